// The publisher's side of one collection: the authoritative key -> value map,
// its epoch and sequence, its persistence, and the updates it emits.
import type { Static, TSchema } from '@sinclair/typebox';
import type { Logger } from '../lib/log';
import { keyProblem, schemaErrors, type CollectionSpec } from './catalog';
import { deepFreeze, jsonEqual } from './equal';
import { ClosedError, InvalidKeyError, InvalidValueError, UnknownKeyError, ValueTooLargeError } from './errors';
import type { PersistentStore } from './persistent-store';
import {
  encodeDel,
  encodeRestarted,
  encodeSet,
  newEpoch,
  topicFrame,
  type PublicationInfo,
  type SnapshotMsg,
} from './wire';

/** Where a publication's updates go: the owner's PUB socket in production. */
export interface UpdateSink {
  send(frames: Buffer[]): void;
}

interface Entry<T> {
  json: string;
  value: T;
}

export class Publication<S extends TSchema = TSchema> {
  readonly type: string;
  readonly epoch = newEpoch();
  private seqNo = 0;
  private restartedCounter = 0;
  private closed = false;
  private readonly entries = new Map<string, Entry<Readonly<Static<S>>>>();
  private readonly topic: Buffer;

  constructor(
    readonly spec: CollectionSpec<S>,
    readonly owner: string,
    private readonly sink: UpdateSink,
    private readonly log: Logger,
    private readonly store?: PersistentStore,
  ) {
    this.type = spec.type;
    this.topic = topicFrame(spec.type);
    if (store) this.loadPersisted(store);
  }

  get seq(): number { return this.seqNo; }
  get restarted(): number { return this.restartedCounter; }
  get size(): number { return this.entries.size; }

  /** Publishes a value; returns false (and sends nothing) when it equals the current one. */
  publish(key: string, value: Static<S>): boolean {
    this.assertOpen();
    const problem = keyProblem(key);
    if (problem) throw new InvalidKeyError(this.type, key, problem);
    if (!this.spec.check.Check(value)) throw new InvalidValueError(this.type, key, schemaErrors(this.spec, value));
    if (this.spec.keyOf) {
      const own = this.spec.keyOf(value);
      if (own !== key) throw new InvalidKeyError(this.type, key, `the value's own key is ${JSON.stringify(own)}`);
    }
    const json = JSON.stringify(value);
    const bytes = Buffer.byteLength(json);
    if (bytes > this.spec.maxValueBytes) throw new ValueTooLargeError(this.type, key, bytes, this.spec.maxValueBytes);
    const current = this.entries.get(key);
    if (current && (current.json === json || jsonEqual(current.value, value))) return false;
    this.store?.write(key, json); // durable before anyone is told
    this.entries.set(key, { json, value: deepFreeze(JSON.parse(json) as Static<S>) });
    this.sink.send(encodeSet(this.topic, this.epoch, ++this.seqNo, key, json));
    return true;
  }

  unpublish(key: string): void {
    this.assertOpen();
    if (!this.entries.has(key)) throw new UnknownKeyError(this.type, key);
    this.store?.remove(key);
    this.entries.delete(key);
    this.sink.send(encodeDel(this.topic, this.epoch, ++this.seqNo, key));
  }

  get(key: string): Readonly<Static<S>> | undefined {
    return this.entries.get(key)?.value;
  }

  getAll(): Map<string, Readonly<Static<S>>> {
    const out = new Map<string, Readonly<Static<S>>>();
    for (const [k, e] of this.entries) out.set(k, e.value);
    return out;
  }

  keys(): string[] {
    return [...this.entries.keys()];
  }

  /** Tells subscribers this publisher's initial set is complete (EVE's SignalRestarted). */
  signalRestarted(): void {
    this.assertOpen();
    this.restartedCounter++;
    this.sink.send(encodeRestarted(this.topic, this.epoch, ++this.seqNo, this.restartedCounter));
  }

  snapshot(): SnapshotMsg {
    const entries: Array<[string, string]> = [];
    for (const [k, e] of this.entries) entries.push([k, e.json]);
    return { epoch: this.epoch, seq: this.seqNo, restarted: this.restartedCounter, persistent: this.spec.persistent, entries };
  }

  info(): PublicationInfo {
    return {
      type: this.type,
      keys: this.entries.size,
      epoch: this.epoch,
      seq: this.seqNo,
      restarted: this.restartedCounter,
      persistent: this.spec.persistent,
    };
  }

  get isClosed(): boolean { return this.closed; }

  /** Stops publishing. Persisted values stay on disk for the next instance. */
  close(): void {
    this.closed = true;
  }

  private assertOpen(): void {
    if (this.closed) throw new ClosedError(`${this.owner}/${this.type}: publication is closed`);
  }

  private loadPersisted(store: PersistentStore): void {
    const { entries, corrupt } = store.load();
    for (const c of corrupt) this.log.error('persisted value unreadable, moved aside', { collection: this.type, file: c.file, error: c.error });
    for (const [key, value] of entries) {
      if (!this.spec.check.Check(value)) {
        this.log.error('persisted value fails its schema, ignored', { collection: this.type, key, problems: schemaErrors(this.spec, value) });
        continue;
      }
      const json = JSON.stringify(value);
      this.entries.set(key, { json, value: deepFreeze(JSON.parse(json) as Static<S>) });
    }
    if (this.entries.size) this.log.debug('loaded persisted collection', { collection: this.type, keys: this.entries.size });
  }
}

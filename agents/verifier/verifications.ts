// Executes the verifier's plan per digest: hashes pending files (at most
// MAX_PARALLEL at once), accepts or rejects them, and publishes VerifyImageStatus.
import type { AgentContext } from '../agent';
import type { ErrorInfo } from '../../pubsub/collections/common';
import type { VerifyImageConfig, VerifyImageStatus, VerifyImageStatusCollection } from '../../pubsub/collections/content';
import type { Publication } from '../../pubsub/publication';
import { planVerify, type PublisherKey } from './planner';
import { hashFile, Semaphore, type VerifiedStore } from './store-driver';

const MAX_PARALLEL = 2;

export interface VerifyInputs {
  config(digest: string): VerifyImageConfig | undefined;
  configs(): Iterable<string>;
  keys(): readonly PublisherKey[];
  signatureRequired(): boolean;
}

export class Verifications {
  private readonly inFlight = new Map<string, Promise<void>>();
  private readonly rejected = new Map<string, string>();
  private readonly sem = new Semaphore(MAX_PARALLEL);

  constructor(
    private readonly ctx: AgentContext,
    private readonly pub: Publication<(typeof VerifyImageStatusCollection)['schema']>,
    private readonly store: VerifiedStore,
    private readonly inputs: VerifyInputs,
  ) {}

  /** Start-up: re-hash every verified file; publish the good ones (refCount 0), delete the bad. */
  async scan(): Promise<void> {
    const { digests, junk } = this.store.list();
    for (const name of junk) {
      this.ctx.log.error('removing a file in verified/ that is not named by a digest', { file: name });
      this.store.remove(`${this.store.dir}/${name}`);
    }
    const good = new Set<string>();
    await Promise.all(digests.map((digest) => this.sem.run(async () => {
      const file = this.store.pathOf(digest);
      const got = await hashFile(file, this.ctx.signal);
      if (got.digest !== digest) {
        this.ctx.log.error('verified file is corrupt; deleted', { file, expected: digest, got: got.digest });
        this.store.remove(file);
        return;
      }
      good.add(digest);
      this.publish({ digest, state: 'VERIFIED', refCount: 0, path: file, sizeBytes: got.size, verifiedAt: new Date().toISOString() });
    })));
    for (const key of this.pub.keys()) if (!good.has(key)) this.pub.unpublish(key);
  }

  /** Every config again (the keys or the config items changed). */
  reconcileAll(): void {
    for (const digest of this.inputs.configs()) this.reconcile(digest);
  }

  reconcile(digest: string): void {
    if (this.ctx.signal.aborted) return;
    const config = this.inputs.config(digest);
    const status = this.pub.get(digest);
    if (!config) {
      // Vanished: the status goes, the file stays (deleting is always explicit).
      this.rejected.delete(digest);
      if (status && !this.inFlight.has(digest)) this.pub.unpublish(digest);
      return;
    }
    const step = planVerify(config, {
      status, verifiedSize: this.store.sizeOf(digest), inFlight: this.inFlight.has(digest), keys: this.inputs.keys(),
      signatureRequired: this.inputs.signatureRequired(), rejectedConfig: this.rejected.get(digest),
    });
    const base = { digest, refCount: config.refCount, mediaType: config.mediaType };
    switch (step.action) {
      case 'none':
        return;
      case 'delete':
        this.store.remove(this.store.pathOf(digest));
        this.rejected.delete(digest);
        if (status) this.pub.unpublish(digest);
        return;
      case 'reject':
        this.publish({ ...base, state: 'INITIAL', error: this.error(digest, step.error, step.retryCondition) });
        return;
      case 'adopt':
      case 'refcount': {
        const size = this.store.sizeOf(digest) as number;
        const kept = status?.state === 'VERIFIED' && !status.error ? status.verifiedAt : undefined;
        this.publish({ ...base, state: 'VERIFIED', path: this.store.pathOf(digest), sizeBytes: size, signedBy: step.signedBy, verifiedAt: kept ?? new Date().toISOString() });
        return;
      }
      case 'verify':
        this.startVerify(config, step.signedBy);
    }
  }

  async stop(): Promise<void> {
    await Promise.allSettled(this.inFlight.values());
  }

  private startVerify(config: VerifyImageConfig, signedBy: string | undefined): void {
    const { digest } = config;
    this.publish({ digest, refCount: config.refCount, mediaType: config.mediaType, state: 'VERIFYING' });
    const work = this.sem
      .run(() => this.verify(config, signedBy))
      .catch((err: Error) => {
        if (this.ctx.signal.aborted) return;
        this.ctx.log.warn('verification failed', { digest, err: err.message });
        if (this.inputs.config(digest)) this.publish({ digest, refCount: config.refCount, mediaType: config.mediaType, state: 'INITIAL', error: this.error(digest, err.message) });
      })
      .finally(() => {
        this.inFlight.delete(digest);
        this.reconcile(digest); // the config may have changed meanwhile
      });
    this.inFlight.set(digest, work);
  }

  private async verify(config: VerifyImageConfig, signedBy: string | undefined): Promise<void> {
    const { digest } = config;
    const pending = this.store.pendingOf(digest, config.pendingPath);
    let got;
    try {
      got = await hashFile(pending, this.ctx.signal);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new Error(`pending file ${pending} for ${digest} not found`);
      throw err;
    }
    const sizeWrong = config.sizeBytes !== undefined && got.size !== config.sizeBytes;
    if (got.digest !== digest || sizeWrong) {
      // Never used: delete it. volumemgr decides whether to fetch again.
      this.store.remove(pending);
      this.rejected.set(digest, JSON.stringify(config));
      const what = got.digest !== digest
        ? `sha256 mismatch for ${digest}: got ${got.digest}`
        : `size mismatch for ${digest}: expected ${config.sizeBytes} bytes, got ${got.size}`;
      this.ctx.log.error('rejected a downloaded blob', { digest, file: pending, problem: what });
      throw new Error(what);
    }
    const file = this.store.accept(digest, pending);
    this.rejected.delete(digest);
    const now = this.inputs.config(digest);
    if (!now) return; // vanished while hashing: the file stays verified, the status goes
    this.publish({ digest, refCount: now.refCount, mediaType: now.mediaType, state: 'VERIFIED', path: file, sizeBytes: got.size, signedBy, verifiedAt: new Date().toISOString() });
    this.ctx.log.info('verified', { digest, bytes: got.size });
  }

  private error(digest: string, message: string, retryCondition?: string): ErrorInfo {
    const e: ErrorInfo = { error: message, time: new Date().toISOString(), severity: 'error', entities: [{ type: 'blob', id: digest }], source: 'VerifyImageStatus' };
    if (retryCondition) e.retryCondition = retryCondition;
    return e;
  }

  private publish(status: VerifyImageStatus): void {
    this.pub.publish(status.digest, Object.fromEntries(Object.entries(status).filter(([, v]) => v !== undefined)) as VerifyImageStatus);
  }
}

// The controller's state directory: everything a controller (or several replicas
// sharing the folder) knows lives here as small JSON files, so `zedctl` commands
// read and change it without a running server.
//
// Layout (default ./zedctl-state, --state DIR, env ZEDCTL_STATE):
//   keys.json                 0600 {sign: {publicKey, seed}, sealingSeed}: the ed25519 key that signs
//                             configs and onboarding replies, and the seed that makes sealing deterministic
//   server.json               0600 how zedctl reaches the broker: url, caPem, controller and onboarding
//                             accounts (clear passwords: this file is the credential), epoch, embedded
//                             (and the dynsec admin, with an external broker)
//   accounts.json             0600 the embedded broker's accounts (scrypt hashes only), see accounts-file.ts
//   broker/retained/          the embedded broker's retained messages (embedded-broker.ts)
//   devices/<serial>.json     registry record (DeviceRecord): token sha256, state, deviceId, keys, times
//   configs/<uuid>.json       the last signed config envelope sent, its seq and epoch, the source sha256
//   info/<uuid>/<kind>/<id>.json   latest info body per object, with its receive time
//   status/<uuid>.json        latest status body (online/offline), with its receive time
//   events/<uuid>.ndjson      info, status and metrics as received, one JSON a line; rotated at 10 MB
//                             to events/<uuid>.ndjson.1 (2 files kept)
//   logs/<uuid>/<seq12>.json  the device's log batches, each stored once and fsynced (log-store.ts); the
//                             oldest deleted past the retention cap. Kept, like events, when a device is removed
//   locks/<name>.lock         short-lived exclusive locks between replicas and commands
// Every JSON file is written atomically (lib/atomic-file.ts); the event logs are appended.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { b64, fromB64, newSignKeyPair, type SignKeyPair } from '../lib/keys';
import type { ConfigBody, InfoBody, StatusBody } from '../api/messages';
import { SERIAL_RE, UUID_RE, type InfoKind } from '../api/topics';
import { unlinkDurableSync, writeFileReplaceSync, writeJsonAtomicSync } from '../lib/atomic-file';
import type { DeviceRecord } from './onboarding';

export const DEFAULT_STATE_DIR = './zedctl-state';
export const EVENTS_ROTATE_BYTES = 10 * 1024 * 1024;

export function resolveStateDir(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return path.resolve(flag ?? env.ZEDCTL_STATE ?? DEFAULT_STATE_DIR);
}

export interface ControllerKeys {
  sign: SignKeyPair;
  /** 32 random bytes for sealSecret: the same secret sealed twice for a device gives the same bytes. */
  sealingSeed: Uint8Array;
}

export interface Account {
  username: string;
  password: string;
}

export interface ServerInfo {
  /** What zedctl commands connect to. */
  url: string;
  caPem?: string;
  /** The address written into provisioning files when devices reach the broker another way. */
  publicUrl?: string;
  controller: Account;
  onboarding: Account;
  /** Grows on `epoch bump`: devices resend all their info when it changes. */
  epoch: number;
  embedded: boolean;
  /** Mosquitto dynamic-security admin, kept so any replica can create device accounts. */
  dynsecAdmin?: Account;
}

export interface ConfigRecord {
  deviceId: string;
  seq: number;
  epoch: number;
  issuedAt: string;
  /** sha256 of the operator's file it was made from. */
  sourceSha256: string;
  /** The signed envelope exactly as published (secrets inside stay sealed). */
  envelope: string;
  sentAt: string;
}

export interface StoredInfo {
  receivedAt: string;
  body: InfoBody;
}

export interface StoredStatus {
  receivedAt: string;
  body: StatusBody;
}

export interface EventLine {
  receivedAt: string;
  type: 'info' | 'status' | 'metrics';
  body: unknown;
  /** The controller replica that took it in (replicas share the ingest). */
  replica?: string;
}

export class StateError extends Error {
  override name = 'StateError';
}

export class StateDir {
  /** uuid → serial, rebuilt from devices/ when a uuid is not found (another replica may have onboarded it). */
  private byId = new Map<string, string>();
  private lastScan = 0;

  /** Events file sizes as last appended by this process. */
  private readonly eventSizes = new Map<string, number>();

  constructor(readonly dir: string, private readonly eventsRotateBytes = EVENTS_ROTATE_BYTES) {}

  init(): void {
    for (const sub of ['devices', 'configs', 'info', 'status', 'events', 'locks']) {
      fs.mkdirSync(path.join(this.dir, sub), { recursive: true, mode: 0o700 });
    }
  }

  path(...parts: string[]): string {
    return path.join(this.dir, ...parts);
  }

  // ---- keys and server ----

  readKeys(): ControllerKeys | undefined {
    const raw = readJson<{ sign: SignKeyPair; sealingSeed: string }>(this.path('keys.json'));
    if (!raw) return undefined;
    return { sign: raw.sign, sealingSeed: fromB64(raw.sealingSeed, 32, 'sealing seed') };
  }

  /** The controller's keys, made once; replicas racing here agree through the lock. */
  ensureKeys(): ControllerKeys {
    const existing = this.readKeys();
    if (existing) return existing;
    return this.withLockSync('keys', () => {
      const again = this.readKeys();
      if (again) return again;
      const keys: ControllerKeys = { sign: newSignKeyPair(), sealingSeed: new Uint8Array(randomBytes(32)) };
      writeJson(this.path('keys.json'), { sign: keys.sign, sealingSeed: b64(keys.sealingSeed) });
      return keys;
    });
  }

  readServer(): ServerInfo | undefined {
    return readJson<ServerInfo>(this.path('server.json'));
  }

  requireServer(): ServerInfo {
    const s = this.readServer();
    if (!s) throw new StateError(`no ${this.path('server.json')}: run \`zedctl serve --state ${this.dir}\` first`);
    return s;
  }

  writeServer(s: ServerInfo): void {
    writeJson(this.path('server.json'), s);
  }

  // ---- device registry ----

  readDevice(serial: string): DeviceRecord | undefined {
    if (!SERIAL_RE.test(serial)) return undefined;
    return readJson<DeviceRecord>(this.path('devices', `${serial}.json`));
  }

  writeDevice(rec: DeviceRecord): void {
    if (!SERIAL_RE.test(rec.serial)) throw new StateError(`invalid serial ${JSON.stringify(rec.serial)}`);
    writeJson(this.path('devices', `${rec.serial}.json`), rec);
    if (rec.deviceId) this.byId.set(rec.deviceId, rec.serial);
  }

  /** Forgets a device: its record, the config sent, what it reported. Events stay, as history. */
  removeDevice(rec: DeviceRecord): void {
    unlinkDurableSync(this.path('devices', `${rec.serial}.json`));
    const uuid = rec.deviceId;
    if (!uuid || !UUID_RE.test(uuid)) return;
    this.byId.delete(uuid);
    unlinkDurableSync(this.path('configs', `${uuid}.json`));
    fs.rmSync(this.path('status', `${uuid}.json`), { force: true });
    fs.rmSync(this.path('info', uuid), { recursive: true, force: true });
    // Its logs go with it: nothing could read them once the serial is gone (up to the retention cap each).
    fs.rmSync(this.path('logs', uuid), { recursive: true, force: true });
  }

  listDevices(): DeviceRecord[] {
    const out: DeviceRecord[] = [];
    for (const name of listDir(this.path('devices'))) {
      if (!name.endsWith('.json') || name.startsWith('.')) continue;
      const rec = this.readDevice(name.slice(0, -5));
      if (rec) out.push(rec);
    }
    return out.sort((a, b) => a.serial.localeCompare(b.serial));
  }

  /** The onboarded device with this UUID; the directory is rescanned at most once a second on a miss. */
  deviceById(uuid: string): DeviceRecord | undefined {
    const serial = this.byId.get(uuid);
    if (serial) {
      const rec = this.readDevice(serial);
      if (rec?.deviceId === uuid) return rec;
    }
    const now = Date.now();
    if (now - this.lastScan < 1000) return undefined;
    this.lastScan = now;
    this.byId = new Map();
    for (const rec of this.listDevices()) if (rec.deviceId) this.byId.set(rec.deviceId, rec.serial);
    const found = this.byId.get(uuid);
    return found ? this.readDevice(found) : undefined;
  }

  /** DEVICE on the command line: a serial or a UUID. */
  findDevice(ref: string): DeviceRecord | undefined {
    if (UUID_RE.test(ref)) {
      this.lastScan = 0;
      const byUuid = this.deviceById(ref);
      if (byUuid) return byUuid;
    }
    return this.readDevice(ref);
  }

  // ---- configs ----

  readConfig(uuid: string): ConfigRecord | undefined {
    if (!UUID_RE.test(uuid)) return undefined;
    return readJson<ConfigRecord>(this.path('configs', `${uuid}.json`));
  }

  writeConfig(rec: ConfigRecord): void {
    writeJson(this.path('configs', `${rec.deviceId}.json`), rec);
  }

  listConfigs(): ConfigRecord[] {
    return listDir(this.path('configs'))
      .filter((n) => n.endsWith('.json') && !n.startsWith('.'))
      .map((n) => this.readConfig(n.slice(0, -5)))
      .filter((r): r is ConfigRecord => r !== undefined);
  }

  /** The body inside a stored config envelope (the record is our own, written after signing). */
  static configBody(rec: ConfigRecord): ConfigBody {
    return JSON.parse((JSON.parse(rec.envelope) as { body: string }).body) as ConfigBody;
  }

  // ---- info, status, events ----

  infoPath(uuid: string, kind: InfoKind, id: string): string {
    return this.path('info', uuid, kind, `${fileSafe(id)}.json`);
  }

  readInfo(uuid: string, kind: InfoKind, id: string): StoredInfo | undefined {
    return readCache<StoredInfo>(this.infoPath(uuid, kind, id));
  }

  /** Info and status are a cache of what devices keep retained on the broker: replaced without fsync. */
  writeInfo(uuid: string, kind: InfoKind, id: string, rec: StoredInfo): void {
    const file = this.infoPath(uuid, kind, id);
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    writeFileReplaceSync(file, JSON.stringify(rec, null, 2) + '\n');
  }

  /** Every stored info of a device, by kind. */
  listInfo(uuid: string): Map<InfoKind, StoredInfo[]> {
    const out = new Map<InfoKind, StoredInfo[]>();
    if (!UUID_RE.test(uuid)) return out;
    for (const kind of listDir(this.path('info', uuid)) as InfoKind[]) {
      const items: StoredInfo[] = [];
      for (const name of listDir(this.path('info', uuid, kind))) {
        if (!name.endsWith('.json') || name.startsWith('.')) continue;
        const rec = readCache<StoredInfo>(this.path('info', uuid, kind, name));
        if (rec) items.push(rec);
      }
      out.set(kind, items.sort((a, b) => a.body.id.localeCompare(b.body.id)));
    }
    return out;
  }

  readStatus(uuid: string): StoredStatus | undefined {
    if (!UUID_RE.test(uuid)) return undefined;
    return readCache<StoredStatus>(this.path('status', `${uuid}.json`));
  }

  writeStatus(uuid: string, rec: StoredStatus): void {
    const file = this.path('status', `${uuid}.json`);
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    writeFileReplaceSync(file, JSON.stringify(rec, null, 2) + '\n');
  }

  eventsPath(uuid: string): string {
    return this.path('events', `${uuid}.ndjson`);
  }

  /** Appends one event; past 10 MB the file becomes .1 (replacing the older one), so at most 2 files. */
  appendEvent(uuid: string, ev: EventLine): void {
    const file = this.eventsPath(uuid);
    const line = JSON.stringify(ev) + '\n';
    // The size is kept in memory (one stat per file, not per message); another replica appending to the
    // same file makes it an estimate, which only moves the rotation point a little.
    let size = this.eventSizes.get(file);
    if (size === undefined) {
      try {
        size = fs.statSync(file).size;
      } catch {
        size = 0; // no file yet
      }
    }
    const bytes = Buffer.byteLength(line);
    if (size > 0 && size + bytes > this.eventsRotateBytes) {
      // Look again before rotating: another replica may have rotated it already.
      try { size = fs.statSync(file).size; } catch { size = 0; }
      if (size > 0 && size + bytes > this.eventsRotateBytes) {
        fs.renameSync(file, `${file}.1`);
        size = 0;
      }
    }
    fs.appendFileSync(file, line, { mode: 0o600 });
    this.eventSizes.set(file, size + bytes);
  }


  /** When anything last arrived from the device: the events file is appended on every message. */
  lastSeen(uuid: string): Date | undefined {
    try {
      return fs.statSync(this.eventsPath(uuid)).mtime;
    } catch {
      return undefined;
    }
  }

  // ---- locks ----

  /**
   * Runs fn holding an exclusive lock shared by every process using this folder. A lock older
   * than staleMs belongs to a process that died while holding it, and is taken over.
   */
  async withLock<T>(name: string, fn: () => Promise<T> | T, staleMs = 60_000): Promise<T> {
    const file = this.lockFile(name);
    while (!this.tryLock(file, staleMs)) await new Promise((r) => setTimeout(r, 20));
    try {
      return await fn();
    } finally {
      fs.rmSync(file, { force: true });
    }
  }

  withLockSync<T>(name: string, fn: () => T, staleMs = 10_000): T {
    const file = this.lockFile(name);
    const pause = new Int32Array(new SharedArrayBuffer(4));
    while (!this.tryLock(file, staleMs)) Atomics.wait(pause, 0, 0, 20);
    try {
      return fn();
    } finally {
      fs.rmSync(file, { force: true });
    }
  }

  private lockFile(name: string): string {
    fs.mkdirSync(this.path('locks'), { recursive: true, mode: 0o700 });
    return this.path('locks', `${fileSafe(name)}.lock`);
  }

  private tryLock(file: string, staleMs: number): boolean {
    try {
      fs.writeFileSync(file, `${os.hostname()} ${process.pid}\n`, { flag: 'wx', mode: 0o600 });
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    try {
      if (Date.now() - fs.statSync(file).mtimeMs > staleMs) fs.rmSync(file, { force: true });
    } catch {
      // released meanwhile
    }
    return false;
  }
}

/** Object ids come from topics: anything but '/', '+' and '#'; keep them inside their folder. */
export function fileSafe(id: string): string {
  const enc = encodeURIComponent(id);
  return enc.startsWith('.') ? `%2E${enc.slice(1)}` : enc;
}

export function readJson<T>(file: string): T | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    return JSON.parse(text) as T;
  } catch (err) {
    throw new StateError(`${file} is not JSON: ${(err as Error).message}`);
  }
}

/** readJson for cache files: one left empty or torn by a power loss reads as missing (the device re-sends it). */
export function readCache<T>(file: string): T | undefined {
  try {
    return readJson<T>(file);
  } catch (err) {
    if (err instanceof StateError) return undefined;
    throw err;
  }
}

/** The state dir's JSON files: atomic, in private directories. */
export const writeJson = writeJsonAtomicSync;

/** A directory's entries; none when it does not exist (yet). */
export function listDir(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

// The zedctl commands (main.ts parses and dispatches). Each works on the state
// dir; the ones that publish (config set, epoch bump) reach the broker with the
// controller account in server.json, and succeed only on the broker's PUBACK.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import type { MqttClient } from 'mqtt';
import { SINGLE_INFO_ID, type ConfigInfo } from '../api/info';
import { SERIAL_RE, topics } from '../api/topics';
import { writeFileAtomicSync } from '../lib/atomic-file';
import { UsageError } from '../lib/cli';
import type { Provisioning } from '../api/provisioning';
import type { Logger } from '../lib/log';
import { AccountsFile } from './accounts-file';
import type { BrokerProvisioner } from './broker-accounts';
import { connectOnce, publishAcked } from './broker-client';
import { connectDynsec } from './broker-dynsec';
import { resignConfig, signConfig } from './config-signer';
import { LogStore } from './log-store';
import { LogPrinter, followLogs, printStored, type FollowOptions, type LogFilter } from './log-view';
import { tokenHash, type DeviceRecord } from './onboarding';
import { startController, type ControllerOptions } from './server';
import { StateDir, type ServerInfo } from './state-dir';
import { deviceRow, devicesTable, eventText, gatherDevice, showText, type DeviceView } from './views';

/** A command that could not do its job: printed as "zedctl: message", exit code 1. */
export class CommandError extends Error {
  override name = 'CommandError';
}

export interface Io {
  out(text: string): void;
  err(text: string): void;
}

export async function serve(opts: ControllerOptions, io: Io, signal: AbortSignal): Promise<void> {
  const ctl = await startController(opts);
  io.out(`zedctl: serving devices on ${ctl.url} (state ${opts.stateDir}); stop with Ctrl-C\n`);
  await new Promise<void>((resolve) => {
    if (signal.aborted) resolve();
    signal.addEventListener('abort', () => resolve(), { once: true });
  });
  await ctl.close();
  io.out('zedctl: stopped\n');
}

// ---- devices: add, allow, list, show ----

export interface RegisterOptions {
  token?: string;
  out?: string;
  /** allow: only a pending serial; add: anything not yet onboarded. */
  mode: 'add' | 'allow';
}

export function registerDevice(state: StateDir, serial: string, opts: RegisterOptions, io: Io): void {
  if (!SERIAL_RE.test(serial)) throw new UsageError(`invalid serial ${JSON.stringify(serial)}: letters, digits and _ . : - (first a letter or digit), at most 64`);
  if (opts.token !== undefined && (opts.token.length < 8 || opts.token.length > 256)) throw new UsageError('--token must be 8 to 256 characters');
  const server = state.requireServer();
  const keys = state.ensureKeys();
  const token = opts.token ?? randomBytes(24).toString('base64url');
  state.withLockSync(`device-${serial}`, () => {
    const existing = state.readDevice(serial);
    if (existing?.state === 'onboarded') throw new CommandError(`serial ${serial} is already onboarded as ${existing.deviceId}`);
    if (opts.mode === 'allow' && existing?.state !== 'pending') {
      throw new CommandError(`serial ${serial} is not pending (${existing ? existing.state : 'unknown'}): use \`zedctl device add ${serial}\``);
    }
    const { lastRefusal: _old, ...kept } = existing ?? { serial, createdAt: new Date().toISOString() };
    const rec: DeviceRecord = { ...kept, serial, state: 'registered', tokenSha256: tokenHash(token) };
    state.writeDevice(rec);
  });
  const provisioning: Provisioning = {
    broker: { url: server.publicUrl ?? server.url, ...(server.caPem ? { caPem: server.caPem } : {}) },
    onboarding: { username: server.onboarding.username, password: server.onboarding.password },
    serial,
    token,
    controllerPublicKey: keys.sign.publicKey,
  };
  const text = JSON.stringify(provisioning, null, 2) + '\n';
  if (opts.out) {
    writeFileAtomicSync(opts.out, text); // mode 0600: it holds the token and the onboarding password
    io.out(`${serial} registered; provisioning file written to ${opts.out} (copy it to the device as <config>/controller.json)\n`);
  } else {
    io.out(text);
  }
}

export function listDevices(state: StateDir, json: boolean, io: Io): void {
  const rows = state.listDevices().map((rec) => deviceRow(gatherDevice(state, rec)));
  io.out(json ? JSON.stringify(rows, null, 2) + '\n' : devicesTable(rows));
}

export function findOrFail(state: StateDir, ref: string): DeviceRecord {
  const rec = state.findDevice(ref);
  if (!rec) throw new CommandError(`no device ${ref} (give a serial or a device UUID; \`zedctl devices\` lists them)`);
  return rec;
}

function onboarded(rec: DeviceRecord): Required<Pick<DeviceRecord, 'deviceId' | 'boxPublicKey'>> & DeviceRecord {
  if (rec.state !== 'onboarded' || !rec.deviceId || !rec.boxPublicKey) {
    throw new CommandError(`device ${rec.serial} is ${rec.state}, not onboarded yet: it has no keys to seal a config to`);
  }
  return rec as Required<Pick<DeviceRecord, 'deviceId' | 'boxPublicKey'>> & DeviceRecord;
}

export function showDevice(state: StateDir, ref: string, json: boolean, io: Io): void {
  const view: DeviceView = gatherDevice(state, findOrFail(state, ref));
  io.out(json ? JSON.stringify(view, null, 2) + '\n' : showText(view));
}

// ---- configs ----

/**
 * Forgets a device: its broker account goes (its connection with it), its retained config and info are
 * cleared on the broker, and its record, config and info leave the state dir. The serial can then be
 * added again; the device must be given the new provisioning file and lose its onboarding record.
 */
export async function removeDevice(state: StateDir, ref: string, io: Io): Promise<void> {
  const dev = findOrFail(state, ref);
  const server = state.requireServer();
  const uuid = dev.deviceId;
  if (uuid) {
    const provisioner = await provisionerFor(state, server);
    try {
      await provisioner.remove(dev.brokerUsername ?? uuid);
    } finally {
      await provisioner.close?.();
    }
    const retained = [topics.config(uuid), topics.status(uuid)];
    for (const [kind, items] of state.listInfo(uuid)) for (const i of items) retained.push(topics.info(uuid, kind, i.body.id));
    // An empty retained message deletes the retained one.
    await withBroker(server, async (client) => {
      for (const topic of retained) await publishAcked(client, topic, Buffer.alloc(0), true);
    });
  }
  state.removeDevice(dev);
  io.out(`${dev.serial} removed${uuid ? ` (device ${uuid}: broker account, retained config and info cleared)` : ''}\n`);
}

/** Who creates and removes broker accounts: the embedded broker's accounts file, or Mosquitto's dynsec. */
async function provisionerFor(state: StateDir, server: ServerInfo): Promise<BrokerProvisioner & { close?(): Promise<void> }> {
  if (server.embedded) return new AccountsFile(state);
  if (!server.dynsecAdmin) throw new CommandError('server.json has no dynamic-security admin account: cannot remove the device\'s broker account');
  return connectDynsec({ url: server.url, ...(server.caPem ? { caPem: server.caPem } : {}), ...server.dynsecAdmin });
}

async function withBroker<T>(server: ServerInfo, fn: (client: MqttClient) => Promise<T>): Promise<T> {
  let client: MqttClient;
  try {
    client = await connectOnce({ url: server.url, caPem: server.caPem, username: server.controller.username, password: server.controller.password });
  } catch (err) {
    throw new CommandError(`${(err as Error).message} (is \`zedctl serve\` running?)`);
  }
  try {
    return await fn(client);
  } finally {
    await client.endAsync();
  }
}

export async function configSet(state: StateDir, ref: string, file: string, io: Io): Promise<void> {
  const dev = onboarded(findOrFail(state, ref));
  const server = state.requireServer();
  const keys = state.readKeys();
  if (!keys) throw new CommandError(`no controller keys in ${state.path('keys.json')}`);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new CommandError(`cannot read ${file}: ${(err as Error).message}`);
  }
  const uuid = dev.deviceId;
  // The lock keeps seq growing by one when two operators (or replicas) send at once.
  const seq = await state.withLock(`config-${uuid}`, async () => {
    // The device's own word counts too: after a state dir restored from an old copy, a lower seq would be refused.
    const applied = (state.readInfo(uuid, 'config', SINGLE_INFO_ID)?.body.value as ConfigInfo | undefined)?.seq ?? 0;
    const previousSeq = Math.max(state.readConfig(uuid)?.seq ?? 0, applied);
    const signed = signConfig({ text, device: dev, previousSeq, epoch: server.epoch, keys, now: new Date() });
    if (!signed.ok) {
      io.err(`zedctl: ${file} is refused, nothing was sent (${signed.errors.length} error${signed.errors.length === 1 ? '' : 's'}):\n`);
      for (const e of signed.errors) io.err(`  ${e.path || '/'}: ${e.message}\n`);
      throw new CommandError('config refused');
    }
    await withBroker(server, (client) => publishAcked(client, topics.config(uuid), signed.envelope, true));
    state.writeConfig({
      deviceId: uuid, seq: signed.body.seq, epoch: signed.body.epoch, issuedAt: signed.body.issuedAt,
      sourceSha256: signed.sourceSha256, envelope: signed.envelope.toString(), sentAt: new Date().toISOString(),
    });
    return signed.body.seq;
  });
  io.out(`config seq ${seq} sent to ${dev.serial} (${uuid})\n`);
}

export function configGet(state: StateDir, ref: string, io: Io): void {
  const dev = findOrFail(state, ref);
  const rec = dev.deviceId ? state.readConfig(dev.deviceId) : undefined;
  if (!rec) throw new CommandError(`no config was sent to ${dev.serial} yet`);
  const body = StateDir.configBody(rec);
  const shown = { deviceId: rec.deviceId, seq: rec.seq, epoch: rec.epoch, issuedAt: rec.issuedAt, sentAt: rec.sentAt, sourceSha256: rec.sourceSha256, config: body.config };
  io.out(JSON.stringify(shown, null, 2) + '\n');
}

/** A new epoch, and every device's current config again with it (so each device resends all its info). */
export async function epochBump(state: StateDir, io: Io): Promise<void> {
  const keys = state.readKeys();
  if (!keys) throw new CommandError(`no controller keys in ${state.path('keys.json')}`);
  const bump = (): Promise<ServerInfo> => state.withLock('server', () => {
    const s = state.requireServer();
    const next = { ...s, epoch: s.epoch + 1 };
    state.writeServer(next);
    return next;
  });
  const configs = state.listConfigs();
  if (configs.length === 0) {
    const server = await bump();
    io.out(`epoch ${server.epoch}; no device has a config yet\n`);
    return;
  }
  const failed: string[] = [];
  let sent = 0;
  // Connected first: a broker out of reach leaves the epoch as it was.
  const server = await withBroker(state.requireServer(), async (client) => {
    const bumped = await bump();
    for (const { deviceId } of configs) {
      try {
        await state.withLock(`config-${deviceId}`, async () => {
          const current = state.readConfig(deviceId);
          if (!current) return;
          const next = resignConfig(StateDir.configBody(current), bumped.epoch, keys, new Date());
          await publishAcked(client, topics.config(deviceId), next.envelope, true);
          state.writeConfig({ ...current, seq: next.body.seq, epoch: next.body.epoch, issuedAt: next.body.issuedAt, envelope: next.envelope.toString(), sentAt: new Date().toISOString() });
          sent++;
        });
      } catch (err) {
        failed.push(`${deviceId}: ${(err as Error).message}`);
      }
    }
    return bumped;
  });
  io.out(`epoch ${server.epoch}; config republished to ${sent} device${sent === 1 ? '' : 's'}\n`);
  if (failed.length) throw new CommandError(`not republished to ${failed.length}:\n  ${failed.join('\n  ')}`);
}

// ---- follow ----

export const FOLLOW_POLL_MS = 250;

/** Prints the device's events as they are appended (tail -f), following the rotation to .1. */
export async function follow(state: StateDir, ref: string, metrics: boolean, io: Io, signal: AbortSignal, log?: Logger): Promise<void> {
  const dev = findOrFail(state, ref);
  if (!dev.deviceId) throw new CommandError(`device ${dev.serial} is ${dev.state}: nothing to follow until it onboards`);
  const file = state.eventsPath(dev.deviceId);
  io.out(`following ${dev.serial} (${dev.deviceId})${metrics ? ' with metrics' : ''}; stop with Ctrl-C\n`);
  let pos = statOf(file)?.size ?? 0;
  let ino = statOf(file)?.ino;
  let partial = Buffer.alloc(0);
  // Bytes, not text, until a whole line is in: a read may end inside a UTF-8 character.
  const emit = (chunk: Buffer): void => {
    let data = Buffer.concat([partial, chunk]);
    for (let nl = data.indexOf(0x0a); nl >= 0; nl = data.indexOf(0x0a)) {
      const line = data.subarray(0, nl).toString('utf8');
      data = data.subarray(nl + 1);
      if (!line) continue;
      try {
        const text = eventText(JSON.parse(line), metrics);
        if (text) io.out(text + '\n');
      } catch (err) {
        log?.debug('unreadable event line', { error: (err as Error).message });
      }
    }
    partial = Buffer.from(data);
  };
  while (!signal.aborted) {
    const st = statOf(file);
    if (st && ino !== undefined && st.ino !== ino) {
      // Rotated: finish the old file (now .1) from where we were, then start the new one.
      const old = statOf(`${file}.1`);
      if (old?.ino === ino) emit(readFrom(`${file}.1`, pos));
      pos = 0;
      partial = Buffer.alloc(0);
    }
    if (st) {
      ino = st.ino;
      if (st.size < pos) pos = 0;
      if (st.size > pos) {
        emit(readFrom(file, pos, st.size));
        pos = st.size;
      }
    }
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, FOLLOW_POLL_MS);
      signal.addEventListener('abort', done);
    });
  }
}

// ---- logs ----

export interface LogsOptions {
  filter: LogFilter;
  follow: boolean;
  json: boolean;
  /** For tests: shorter waits. */
  followOptions?: FollowOptions;
}

/** Prints the device's stored log lines in seq order; with follow, keeps printing new batches. */
export async function logs(state: StateDir, ref: string, opts: LogsOptions, io: Io, signal: AbortSignal): Promise<void> {
  const dev = findOrFail(state, ref);
  if (!dev.deviceId) throw new CommandError(`device ${dev.serial} is ${dev.state}: it has no logs until it onboards`);
  const store = new LogStore(state.dir);
  const printer = new LogPrinter(opts.filter, opts.json, (line) => io.out(line + '\n'));
  printStored(store, dev.deviceId, printer);
  if (!opts.follow) {
    if (printer.last === undefined) io.err(`zedctl: no logs stored for ${dev.serial} (${dev.deviceId}) yet\n`);
    return;
  }
  io.err(`following the logs of ${dev.serial} (${dev.deviceId}); stop with Ctrl-C\n`);
  await followLogs(store, dev.deviceId, printer, signal, opts.followOptions);
}

function statOf(file: string): fs.Stats | undefined {
  try {
    return fs.statSync(file);
  } catch {
    return undefined;
  }
}

function readFrom(file: string, start: number, end?: number): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    const size = (end ?? fs.fstatSync(fd).size) - start;
    if (size <= 0) return Buffer.alloc(0);
    const buf = Buffer.alloc(size);
    const n = fs.readSync(fd, buf, 0, size, start);
    return buf.subarray(0, n);
  } finally {
    fs.closeSync(fd);
  }
}

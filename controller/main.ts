// zedctl: the reference controller's command. Pre-register devices, let them
// onboard, send each its signed config, and watch what they report; everything
// it knows is in the state dir (state-dir.ts), and `serve` is the process that
// talks to the devices.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { UsageError, loggerFrom } from '../lib/cli';
import type { ToolEnv, ToolSpec } from '../tools/tool';
import { CommandError, configGet, configSet, epochBump, follow, listDevices, logs, registerDevice, removeDevice, serve, showDevice, type Io } from './cli';
import { DEFAULT_LOG_RETENTION_BYTES } from './log-store';
import { LEVELS, type LogFilter, type LogLevel } from './log-view';
import { DEFAULT_GROUP } from './server';
import { StateError, StateDir, resolveStateDir } from './state-dir';

const HELP = `Usage:
  zedctl serve [--listen HOST:PORT] [--tls-cert FILE --tls-key FILE [--tls-ca FILE]] [--public-url URL]
               [--log-retention-mib N]
  zedctl serve --broker URL [--ca FILE] [--dynsec-admin USER --dynsec-password-file FILE]
               [--group NAME] [--replica NAME] [--public-url URL] [--log-retention-mib N]
      Runs the controller until Ctrl-C (SIGINT) or SIGTERM. Without --broker it runs its own MQTT
      broker on --listen (default 127.0.0.1:1883), over TLS with --tls-cert and --tls-key (devices get
      --tls-ca, default the certificate, in their provisioning file). It refuses to serve MQTT in clear
      beyond the loopback (device passwords would cross the network) unless --insecure-plain is given.
      With --broker it uses that Mosquitto (dynamic
      security plugin): the admin account, given once, creates the controller's, the onboarding and
      every device's account, and is kept in server.json. Replicas sharing one --state and broker
      split the device traffic (shared subscriptions, group --group, default ${DEFAULT_GROUP}).
      --public-url is the broker address written into provisioning files, if devices use another.
      Devices' log batches are stored under <state>/logs/<uuid>/, each once, and acknowledged;
      past --log-retention-mib per device (default ${DEFAULT_LOG_RETENTION_BYTES / 1024 / 1024}) the oldest batches are deleted.
  zedctl device add SERIAL [--token TOKEN] [--out FILE]
      Registers SERIAL and writes its provisioning file (to stdout without --out; mode 0600): broker
      url, onboarding account, serial, a one-time token (random unless --token) and the controller's
      public key. Put it on the device as <config dir>/controller.json. Adding a serial that has not
      onboarded yet replaces its token.
  zedctl device allow SERIAL [--token TOKEN] [--out FILE]
      A device that asks to join without being registered is refused and listed as pending. allow
      registers it as add does: give the device the new provisioning file, or pass --token with the
      token the device already has so it can join as it is.
  zedctl device remove DEVICE
      Forgets a device: removes its broker account (closing its connection), clears its retained
      config and info on the broker, and its record, info and logs in the state dir. Its serial can be added again
      (a device that lost its keys, or one replaced).
  zedctl devices [--json]
      Every device: state, UUID, online/offline, last seen, config seq applied/sent, apps running.
  zedctl show DEVICE [--json]
      One device: its record, link, host, config status (applied, refused with every field error),
      apps with their state and errors, volumes, content trees.
  zedctl config set DEVICE FILE
      Checks FILE (a device config, docs/device-config.md) as the device would, seals its secrets to
      the device (datastore passwords, and app env values written {"secret": "text"}), signs it with
      the next seq, publishes it (retained) and prints the seq once the broker has it.
  zedctl config get DEVICE
      The last config sent to DEVICE (secrets stay sealed).
  zedctl epoch bump
      Starts a new controller epoch and sends every device its current config again with it: each
      device then reports all its info again.
  zedctl follow DEVICE [--metrics]
      Prints what DEVICE reports as it arrives (info changes and status; metrics with --metrics).
  zedctl logs DEVICE [--app NAME] [--source AGENT] [--level L] [--since TIME] [--follow] [--json]
      DEVICE's log lines as the controller stored them, in order, one a line: time, source (or
      app/NAME), level, message and fields. "-- N lines dropped on the device (why) --" marks lines
      the device lost, "-- batches A-B missing --" batches that never arrived. --app (a name or
      id), --source (an agent) and --level (at least: ${LEVELS.join(', ')}) filter;
      --since TIME (RFC 3339) starts there; --follow keeps printing batches as they are stored
      (it reads the state dir: run it beside serve); --json prints NDJSON.

DEVICE is a serial or a device UUID.

Options:
  --state DIR          the controller's state directory (default ./zedctl-state, env ZEDCTL_STATE)
  -d, --debug          debug logging (serve)
  --log-format F       json (default) or text (serve)
  -h, --help           this help

Exit codes: 0 done, 1 failed, 2 wrong usage.`;

const OPTIONS = {
  state: { type: 'string' },
  listen: { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'tls-ca': { type: 'string' },
  'insecure-plain': { type: 'boolean' },
  'public-url': { type: 'string' },
  broker: { type: 'string' },
  ca: { type: 'string' },
  'dynsec-admin': { type: 'string' },
  'dynsec-password-file': { type: 'string' },
  group: { type: 'string' },
  replica: { type: 'string' },
  token: { type: 'string' },
  out: { type: 'string' },
  json: { type: 'boolean' },
  metrics: { type: 'boolean' },
  app: { type: 'string' },
  source: { type: 'string' },
  level: { type: 'string' },
  since: { type: 'string' },
  follow: { type: 'boolean' },
  'log-retention-mib': { type: 'string' },
  /** For tests and scripts: stop serve, follow or logs --follow after N ms. */
  'duration-ms': { type: 'string' },
  debug: { type: 'boolean', short: 'd' },
  'log-format': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

export interface ZedctlEnv extends ToolEnv {
  /** Where errors go (default stderr). */
  err?: (text: string) => void;
}

export const zedctl: ToolSpec = {
  commonOptions: false,
  name: 'zedctl',
  summary: 'the reference controller: register devices, sign their configs, watch their state',
  help: HELP,
  async main(args, env: ZedctlEnv) {
    const io: Io = { out: env.out, err: env.err ?? ((t) => process.stderr.write(t)) };
    try {
      return await run(args, io);
    } catch (err) {
      if (err instanceof UsageError) {
        io.err(`zedctl: ${err.message}\nTry 'zedctl --help'.\n`);
        return 2;
      }
      if (err instanceof CommandError || err instanceof StateError) {
        io.err(`zedctl: ${err.message}\n`);
        return 1;
      }
      io.err(`zedctl: ${(err as Error).message ?? String(err)}\n`);
      return 1;
    }
  },
};

async function run(args: string[], io: Io): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args, options: OPTIONS, strict: true, allowPositionals: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const { values: v, positionals: p } = parsed;
  if (v.help) {
    io.out(HELP + '\n');
    return 0;
  }
  if (p.length === 0) {
    io.err(HELP + '\n');
    return 2;
  }
  const state = new StateDir(resolveStateDir(v.state));
  const [cmd, sub, ...rest] = p;
  const need = (n: number, usage: string): void => {
    if (p.length !== n) throw new UsageError(`usage: zedctl ${usage}`);
  };
  switch (cmd) {
    case 'serve': {
      need(1, 'serve [options]');
      const opts = serveOptions(v, state.dir);
      await serve(opts, io, stopSignal(durationMs(v['duration-ms'])));
      return 0;
    }
    case 'device': {
      if (sub === 'remove') {
        need(3, 'device remove DEVICE');
        await removeDevice(state, rest[0]!, io);
        return 0;
      }
      if (sub !== 'add' && sub !== 'allow') throw new UsageError('usage: zedctl device add|allow SERIAL [--token TOKEN] [--out FILE], or device remove DEVICE');
      need(3, `device ${sub} SERIAL [--token TOKEN] [--out FILE]`);
      registerDevice(state, rest[0]!, { mode: sub, token: v.token, out: v.out }, io);
      return 0;
    }
    case 'devices':
      need(1, 'devices [--json]');
      listDevices(state, v.json === true, io);
      return 0;
    case 'show':
      need(2, 'show DEVICE [--json]');
      showDevice(state, sub!, v.json === true, io);
      return 0;
    case 'config':
      if (sub === 'set') {
        need(4, 'config set DEVICE FILE');
        await configSet(state, rest[0]!, rest[1]!, io);
        return 0;
      }
      if (sub === 'get') {
        need(3, 'config get DEVICE');
        configGet(state, rest[0]!, io);
        return 0;
      }
      throw new UsageError('usage: zedctl config set DEVICE FILE | zedctl config get DEVICE');
    case 'epoch':
      if (sub !== 'bump') throw new UsageError('usage: zedctl epoch bump');
      need(2, 'epoch bump');
      await epochBump(state, io);
      return 0;
    case 'follow':
      need(2, 'follow DEVICE [--metrics]');
      await follow(state, sub!, v.metrics === true, io, stopSignal(durationMs(v['duration-ms'])));
      return 0;
    case 'logs':
      need(2, 'logs DEVICE [--app NAME] [--source AGENT] [--level L] [--since TIME] [--follow] [--json]');
      await logs(state, sub!, { filter: logFilter(v), follow: v.follow === true, json: v.json === true }, io, stopSignal(durationMs(v['duration-ms'])));
      return 0;
    default:
      throw new UsageError(`unknown command "${cmd}"`);
  }
}

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>['values'];

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\./.test(host);
}

function serveOptions(v: Values, stateDir: string) {
  const log = loggerFrom(v, 'zedctl');
  const readFile = (file: string, what: string): string => {
    try {
      return fs.readFileSync(file, 'utf8');
    } catch (err) {
      throw new CommandError(`cannot read ${what} ${file}: ${(err as Error).message}`);
    }
  };
  if (v.broker !== undefined && !/^mqtts?:\/\//.test(v.broker)) throw new UsageError(`--broker must be mqtt://HOST:PORT or mqtts://HOST:PORT, not ${v.broker}`);
  if (v.broker === undefined && (v.ca || v['dynsec-admin'] || v.group || v.replica)) throw new UsageError('--ca, --dynsec-admin, --group and --replica go with --broker');
  if (v.broker !== undefined && v.listen !== undefined) throw new UsageError('--listen is for the embedded broker; with --broker the broker listens');
  if ((v['dynsec-admin'] === undefined) !== (v['dynsec-password-file'] === undefined)) throw new UsageError('--dynsec-admin and --dynsec-password-file go together');
  if ((v['tls-cert'] === undefined) !== (v['tls-key'] === undefined)) throw new UsageError('--tls-cert and --tls-key go together');
  if (v.broker !== undefined && (v['tls-cert'] || v['tls-ca'] || v['insecure-plain'])) throw new UsageError('--tls-cert, --tls-key, --tls-ca and --insecure-plain are for the embedded broker');
  const listen = v.listen !== undefined ? hostPort(v.listen) : undefined;
  if (v.broker === undefined && listen && !isLoopback(listen.host) && v['tls-cert'] === undefined && !v['insecure-plain']) {
    throw new UsageError(`refusing to serve MQTT in clear on ${listen.host}: devices' passwords would cross the network; give --tls-cert and --tls-key (or --insecure-plain)`);
  }
  if (v['public-url'] !== undefined && !/^mqtts?:\/\//.test(v['public-url'])) throw new UsageError('--public-url must be mqtt://HOST:PORT or mqtts://HOST:PORT');
  return {
    stateDir,
    log,
    ...(listen ? { listen } : {}),
    ...(v['tls-cert'] !== undefined ? { tls: { certPem: readFile(v['tls-cert'], 'TLS certificate'), keyPem: readFile(v['tls-key']!, 'TLS key') } } : {}),
    ...(v['tls-ca'] !== undefined ? { caPem: readFile(v['tls-ca'], 'CA file') } : {}),
    ...(v.broker !== undefined ? { brokerUrl: v.broker } : {}),
    ...(v.ca !== undefined ? { caPem: readFile(v.ca, 'CA file') } : {}),
    ...(v['dynsec-admin'] !== undefined
      ? { dynsecAdmin: { username: v['dynsec-admin'], password: readFile(v['dynsec-password-file']!, 'password file').replace(/\r?\n$/, '') } }
      : {}),
    ...(v.group !== undefined ? { group: v.group } : {}),
    ...(v.replica !== undefined ? { replica: v.replica } : {}),
    ...(v['public-url'] !== undefined ? { publicUrl: v['public-url'] } : {}),
    ...(v['log-retention-mib'] !== undefined ? { logRetentionBytes: mib(v['log-retention-mib']) } : {}),
  };
}

function mib(raw: string): number {
  const n = Number(raw);
  if (!/^\d+(\.\d+)?$/.test(raw) || !(n > 0)) throw new UsageError(`--log-retention-mib must be a positive number of MiB, not ${raw}`);
  return Math.round(n * 1024 * 1024);
}

function logFilter(v: Values): LogFilter {
  if (v.level !== undefined && !(LEVELS as readonly string[]).includes(v.level)) {
    throw new UsageError(`--level must be one of ${LEVELS.join(', ')}, not ${v.level}`);
  }
  let sinceMs: number | undefined;
  if (v.since !== undefined) {
    sinceMs = /^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:\d\d)$/i.test(v.since) ? Date.parse(v.since) : NaN;
    if (!Number.isFinite(sinceMs)) throw new UsageError(`--since must be an RFC 3339 time such as 2026-05-06T07:08:09Z, not ${v.since}`);
  }
  return {
    ...(v.app !== undefined ? { app: v.app } : {}),
    ...(v.source !== undefined ? { source: v.source } : {}),
    ...(v.level !== undefined ? { level: v.level as LogLevel } : {}),
    ...(sinceMs !== undefined ? { sinceMs } : {}),
  };
}

function hostPort(text: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(text);
  const port = Number(m?.[3]);
  if (!m || port > 65535) throw new UsageError(`--listen must be HOST:PORT (e.g. 0.0.0.0:1883), not ${text}`);
  return { host: (m[1] ?? m[2])!, port };
}

function durationMs(raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0) throw new UsageError(`--duration-ms must be a non-negative number, not ${raw}`);
  return n;
}

/** Aborts on SIGINT or SIGTERM (or after durationMs). */
function stopSignal(durationMs?: number): AbortSignal {
  const ac = new AbortController();
  const stop = (): void => {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    clearTimeout(timer);
    ac.abort();
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const timer = durationMs !== undefined ? setTimeout(stop, durationMs) : undefined;
  return ac.signal;
}

// Run directly (node --import tsx controller/main.ts …) until zedbox's registry lists zedctl. The
// file-name test keeps this from firing inside a bundle, where every module shares one __filename.
if (require.main === module && __filename.endsWith(path.join('controller', 'main.ts'))) {
  zedctl.main(process.argv.slice(2), { out: (t) => process.stdout.write(t) }).then(
    (code) => { process.exitCode = code; },
    (err: unknown) => { process.stderr.write(`zedctl: ${(err as Error).stack ?? String(err)}\n`); process.exitCode = 1; },
  );
}

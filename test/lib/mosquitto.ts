// A private, real Mosquitto for one test: TLS on a free 127.0.0.1 port, no
// anonymous access, the dynamic-security plugin with a fresh admin account,
// and persistence in its own temp dir so stop()/start() keeps sessions. The
// test CA and server certificate are made once with openssl and cached, so
// only the first run on a machine pays for key generation.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { freePort } from './config-builder';

const MOSQUITTO = '/usr/sbin/mosquitto';
const CA_CACHE = '/var/tmp/zedbox-test-services/mosquitto-ca';
const DYNSEC_PLUGIN_CANDIDATES = [
  '/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so',
  '/usr/lib/aarch64-linux-gnu/mosquitto_dynamic_security.so',
  '/usr/lib/mosquitto_dynamic_security.so',
  '/usr/local/lib/mosquitto_dynamic_security.so',
];
const START_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 15_000;

export interface MosquittoInstance {
  /** mqtts://127.0.0.1:PORT */
  url: string;
  port: number;
  /** PEM of the CA that signed the broker's certificate. */
  caPem: string;
  /** The same CA as a file (for `zedctl serve --ca FILE`). */
  caFile: string;
  /** The dynsec admin account (what `zedctl serve` uses to provision accounts). */
  admin: { username: string; password: string };
  /** Config, dynsec JSON, persistence and mosquitto.log live here. */
  dir: string;
  /** Clean SIGTERM (Mosquitto writes its persistence file on the way out); waits for the exit. */
  stop(): Promise<void>;
  /** Starts again on the same port with the same persistence; waits until it accepts connections. */
  start(): Promise<void>;
  /** SIGKILL: a crash, nothing saved since the last autosave. */
  kill(): void;
  /** stop() and remove dir. */
  cleanup(): Promise<void>;
}

interface TestPki {
  caPem: string;
  caFile: string;
  certFile: string;
  keyFile: string;
}

/** The CA and a server cert for 127.0.0.1/localhost, made once per machine (atomically, other tests may race). */
function testPki(): TestPki {
  const files = {
    caFile: path.join(CA_CACHE, 'ca.pem'),
    certFile: path.join(CA_CACHE, 'server.pem'),
    keyFile: path.join(CA_CACHE, 'server.key'),
  };
  if (!fs.existsSync(files.keyFile)) {
    fs.mkdirSync(path.dirname(CA_CACHE), { recursive: true });
    // Built aside and renamed in whole: a reader sees either no cache or a complete one.
    const work = fs.mkdtempSync(`${CA_CACHE}.tmp-`);
    try {
      makePki(work);
      fs.renameSync(work, CA_CACHE);
    } catch (err) {
      fs.rmSync(work, { recursive: true, force: true });
      if (!fs.existsSync(files.keyFile)) throw err; // someone else won the race otherwise
    }
  }
  return { ...files, caPem: fs.readFileSync(files.caFile, 'utf8') };
}

function makePki(dir: string): void {
  const openssl = (...args: string[]): void => {
    execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  };
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  openssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '3650', '-subj', '/CN=zedbox test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  openssl('req', '-new', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost');
  fs.writeFileSync(path.join(dir, 'server.ext'), [
    'basicConstraints=CA:FALSE',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    'extendedKeyUsage=serverAuth',
    'subjectAltName=IP:127.0.0.1,DNS:localhost',
  ].join('\n'));
  openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', `0x${randomBytes(8).toString('hex')}`,
    '-days', '3650', '-extfile', 'server.ext', '-out', 'server.pem');
  fs.rmSync(path.join(dir, 'server.csr'));
}

function requireTools(): void {
  for (const tool of [MOSQUITTO, '/usr/bin/mosquitto_ctrl', '/usr/bin/openssl']) {
    if (!fs.existsSync(tool)) throw new Error(`${tool} is missing: bash scripts/test-services.sh installs mosquitto, mosquitto-clients and openssl`);
  }
}

function dynsecPlugin(): string {
  const found = DYNSEC_PLUGIN_CANDIDATES.find((p) => fs.existsSync(p));
  if (!found) throw new Error(`mosquitto_dynamic_security.so not found (looked in ${DYNSEC_PLUGIN_CANDIDATES.join(', ')}); apt-get install mosquitto`);
  return found;
}


/** Mosquitto logs "running" once its listeners are open (a TCP probe instead would log a failed TLS handshake). */
function loggedRunningSince(logFile: string, offset: number): boolean {
  let text: string;
  try {
    text = fs.readFileSync(logFile, 'utf8');
  } catch {
    return false;
  }
  return /mosquitto version \S+ running/.test(text.slice(offset));
}

function mosquittoConf(o: { dir: string; port: number; pki: TestPki; plugin: string }): string {
  return [
    'per_listener_settings false',
    'allow_anonymous false',
    // Tests run as root; "root" keeps Mosquitto from switching to user mosquitto, who could not write our temp dir.
    'user root',
    'persistence true',
    `persistence_location ${o.dir}/data`,
    // The default of 1000 would cut an offline device's queue.
    'max_queued_messages 10000',
    // Without it Nagle's algorithm holds each small answer until the client's delayed ACK: ~44 ms per dynsec command.
    'set_tcp_nodelay true',
    `log_dest file ${o.dir}/mosquitto.log`,
    'log_type error',
    'log_type warning',
    'log_type notice',
    'log_type information',
    'connection_messages true',
    'log_timestamp_format %H:%M:%S',
    `plugin ${o.plugin}`,
    `plugin_opt_config_file ${o.dir}/dynamic-security.json`,
    `listener ${o.port} 127.0.0.1`,
    `cafile ${o.pki.caFile}`,
    `certfile ${o.pki.certFile}`,
    `keyfile ${o.pki.keyFile}`,
    'tls_version tlsv1.2',
    '',
  ].join('\n');
}

/** Brokers still running when the test process exits are killed, so none outlive a crashed test. */
const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

export async function startMosquitto(opts: { name?: string } = {}): Promise<MosquittoInstance> {
  requireTools();
  const pki = testPki();
  const plugin = dynsecPlugin();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `zb-mosq-${opts.name ?? 'test'}-`));
  fs.mkdirSync(path.join(dir, 'data'));
  const port = await freePort();
  const confFile = path.join(dir, 'mosquitto.conf');
  const logFile = path.join(dir, 'mosquitto.log');
  fs.writeFileSync(confFile, mosquittoConf({ dir, port, pki, plugin }));
  const admin = { username: 'zedbox-admin', password: randomBytes(18).toString('base64url') };
  execFileSync('mosquitto_ctrl', ['dynsec', 'init', path.join(dir, 'dynamic-security.json'), admin.username, admin.password], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });

  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let stderr = '';

  /** What this start wrote: the log from the offset it began at, and stderr (config errors come before the log opens). */
  const lastLog = (offset = 0): string => {
    const log = fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8').slice(offset) : '';
    return `${log.trim().split('\n').slice(-20).join('\n')}${stderr ? `\nstderr: ${stderr.trim()}` : ''}`;
  };

  const start = async (): Promise<void> => {
    if (child) throw new Error(`mosquitto ${opts.name ?? ''} is already running`);
    await exited; // a killed broker must be gone before another binds its port
    stderr = '';
    const logOffset = fs.existsSync(logFile) ? fs.statSync(logFile).size : 0;
    const proc = spawn(MOSQUITTO, ['-c', confFile], { stdio: ['ignore', 'ignore', 'pipe'] });
    child = proc;
    running.add(proc);
    proc.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    exited = new Promise((resolve) => proc.once('exit', () => {
      running.delete(proc);
      if (child === proc) child = undefined;
      resolve();
    }));
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (!loggedRunningSince(logFile, logOffset)) {
      if (proc.exitCode !== null || proc.signalCode !== null) {
        throw new Error(`mosquitto exited (${proc.exitCode ?? proc.signalCode}) while starting; last log lines:\n${lastLog(logOffset)}`);
      }
      if (Date.now() > deadline) {
        proc.kill('SIGKILL');
        throw new Error(`mosquitto did not come up on port ${port} within ${START_TIMEOUT_MS} ms; last log lines:\n${lastLog(logOffset)}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  const stop = async (): Promise<void> => {
    const proc = child;
    if (!proc) return;
    proc.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      exited.then(() => false),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), STOP_TIMEOUT_MS))),
    ]);
    clearTimeout(timer);
    if (timedOut) {
      proc.kill('SIGKILL');
      await exited;
      throw new Error(`mosquitto did not stop on SIGTERM within ${STOP_TIMEOUT_MS} ms; killed. Last log lines:\n${lastLog()}`);
    }
  };

  const instance: MosquittoInstance = {
    url: `mqtts://127.0.0.1:${port}`,
    port,
    caPem: pki.caPem,
    caFile: pki.caFile,
    admin,
    dir,
    start,
    stop,
    kill: () => {
      child?.kill('SIGKILL');
      child = undefined; // start() waits for the exit itself
    },
    cleanup: async () => {
      try {
        await stop();
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  };
  try {
    await start();
  } catch (err) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return instance;
}

// The reference controller's own MQTT broker (aedes, MQTT 3.1.1 only), so that
// `zedctl serve` works on a fresh machine without Mosquitto. It enforces the
// same accounts and ACL (controller/acl.ts) that Mosquitto gets through dynsec,
// and keeps retained messages (the configs and onboarding replies the
// controller published) on disk across restarts of the controller process.
//
// Sessions (clean:false subscriptions and their queued QoS 1 messages) and wills
// stay in aedes-persistence's in-memory store: they survive a client's
// disconnect, not a restart of this process. Devices resubscribe on connect and
// the controller republishes what matters, so that loss is recoverable.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { Aedes, type AuthenticateError, type Client } from 'aedes';
import aedesMemoryPersistence from 'aedes-persistence';
import { isTempFile, unlinkDurableSync, writeFileAtomicSync } from '../lib/atomic-file';
import { Logger, RateLimitedLog } from '../lib/log';
import { mayPublish, maySubscribe, type BrokerRole } from './acl';
import { checkPasswordAsync, type AccountLookup, type BrokerAccount } from './broker-accounts';

export interface EmbeddedBrokerOptions {
  host?: string;            // default 127.0.0.1
  port: number;             // 0 = any free port
  tls?: { keyPem: string; certPem: string };  // mqtts when given, plain mqtt otherwise
  accounts: AccountLookup;
  dataDir: string;          // where retained messages (and anything else persisted) live
  log?: Logger;
}

export interface EmbeddedBroker {
  readonly url: string;     // mqtt://127.0.0.1:PORT or mqtts://...
  readonly port: number;
  stats(): { clients: number; messagesIn: number; messagesOut: number };
  /**
   * Devices are turned away ("server unavailable", they retry) until the controller has subscribed:
   * what a device sent before that would reach no subscriber and wait for its sender's resend timer.
   */
  admitDevices(): void;
  close(): Promise<void>;   // closes clients, server, persistence; resolves when the port is free
}

// ---- pure parts: retained message files, password cache --------------------

export interface RetainedMessage {
  topic: string;
  payload: Buffer;
  qos: 0 | 1 | 2;
}

const RETAINED_SUFFIX = '.json';

/** Topics may hold any character and be 64 KiB long: file names are their hash. */
export function retainedFileName(topic: string): string {
  return createHash('sha256').update(topic).digest('hex') + RETAINED_SUFFIX;
}

export function encodeRetained(msg: RetainedMessage): string {
  return JSON.stringify({ topic: msg.topic, qos: msg.qos, payload: msg.payload.toString('base64') }) + '\n';
}

export function decodeRetained(text: string): RetainedMessage {
  const raw = JSON.parse(text) as { topic?: unknown; qos?: unknown; payload?: unknown };
  if (typeof raw.topic !== 'string' || typeof raw.payload !== 'string' || (raw.qos !== 0 && raw.qos !== 1 && raw.qos !== 2)) {
    throw new Error('not a retained message record');
  }
  return { topic: raw.topic, qos: raw.qos, payload: Buffer.from(raw.payload, 'base64') };
}

/**
 * Remembers passwords that passed scrypt, as sha256 digests tied to the stored
 * hash, so a reconnect storm costs one scrypt per account, not per connect. A
 * changed account hash (new password) no longer matches and scrypt runs again.
 */
export class PasswordCheckCache {
  private readonly passed = new Map<string, { storedHash: string; digest: Buffer }>();

  async check(account: BrokerAccount, password: Buffer): Promise<boolean> {
    const digest = createHash('sha256').update(password).digest();
    const hit = this.passed.get(account.username);
    if (hit && hit.storedHash === account.passwordHash && timingSafeEqual(hit.digest, digest)) return true;
    if (!(await checkPasswordAsync(password.toString('utf8'), account.passwordHash))) return false;
    this.passed.set(account.username, { storedHash: account.passwordHash, digest });
    return true;
  }

  forget(username: string): void {
    this.passed.delete(username);
  }
}

// ---- retained messages on disk ---------------------------------------------

class RetainedFiles {
  constructor(readonly dir: string, private readonly log: Logger) {}

  /** Every retained message kept; interrupted writes are removed, unreadable files moved aside. */
  load(): RetainedMessage[] {
    fs.mkdirSync(this.dir, { recursive: true });
    const out: RetainedMessage[] = [];
    for (const name of fs.readdirSync(this.dir)) {
      const file = path.join(this.dir, name);
      if (isTempFile(name)) {
        fs.rmSync(file, { force: true });
        continue;
      }
      if (!name.endsWith(RETAINED_SUFFIX)) continue;
      try {
        out.push(decodeRetained(fs.readFileSync(file, 'utf8')));
      } catch (err) {
        this.log.warn('unreadable retained message file moved aside', { file, error: (err as Error).message });
        fs.renameSync(file, file + '.corrupt');
      }
    }
    return out;
  }

  /** An empty payload clears the topic, as MQTT says. */
  store(msg: RetainedMessage): void {
    const file = path.join(this.dir, retainedFileName(msg.topic));
    if (msg.payload.length === 0) unlinkDurableSync(file);
    else writeFileAtomicSync(file, encodeRetained(msg));
  }
}

/** What aedes calls on its persistence (the async API of aedes 1.x); only the parts we touch. */
interface AsyncMemoryPersistence {
  storeRetained(packet: { cmd: 'publish'; topic: string; payload: Buffer | string; qos: number; retain: boolean }): Promise<void>;
  destroy(): Promise<void>;
}

/** aedes-persistence's in-memory store, preloaded from disk, writing each retained change to disk first. */
async function retainedOnDisk(files: RetainedFiles): Promise<AsyncMemoryPersistence> {
  const memory = aedesMemoryPersistence() as unknown as AsyncMemoryPersistence;
  const storeInMemory = memory.storeRetained.bind(memory);
  for (const msg of files.load()) await storeInMemory({ cmd: 'publish', ...msg, retain: true });
  memory.storeRetained = async (packet) => {
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    // Disk first: if the write fails the publish fails, rather than a retained message vanishing on restart.
    files.store({ topic: packet.topic, payload, qos: packet.qos as 0 | 1 | 2 });
    await storeInMemory(packet);
  };
  return memory;
}

// ---- who is connected as what ----------------------------------------------

interface ClientAuth {
  username: string;
  role: BrokerRole;
  passwordHash: string;
}

const AUTH = Symbol('zedbox.auth');
type AuthedClient = Client & { [AUTH]?: ClientAuth };

function notAuthorized(message: string): AuthenticateError {
  // 5 = CONNACK "Not authorized" (aedes's AuthErrorCode is a const enum, unusable from here).
  return Object.assign(new Error(message), { returnCode: 5 as const });
}

function serverUnavailable(message: string): AuthenticateError {
  return Object.assign(new Error(message), { returnCode: 3 as const });
}

function identifierRejected(message: string): AuthenticateError {
  return Object.assign(new Error(message), { returnCode: 2 as const });
}

/**
 * Client ids are global in MQTT: a CONNECT with a taken id kicks the holder off
 * and inherits its session. Another account may not take an id that is
 * connected or holds a persistent session; the same account may (reconnects).
 */
class ClientIdOwners {
  private readonly owners = new Map<string, { username: string; client: Client; connected: boolean; persistent: boolean }>();

  mayTake(clientId: string, username: string): boolean {
    const owner = this.owners.get(clientId);
    return !owner || owner.username === username || (!owner.connected && !owner.persistent);
  }

  connected(client: Client, username: string): void {
    this.owners.set(client.id, { username, client, connected: true, persistent: !client.clean });
  }

  disconnected(client: Client): void {
    const owner = this.owners.get(client.id);
    if (!owner || owner.client !== client) return; // already taken over by a newer connection
    if (owner.persistent) owner.connected = false;
    else this.owners.delete(client.id);
  }
}

// ---- the broker ------------------------------------------------------------

export async function startEmbeddedBroker(opts: EmbeddedBrokerOptions): Promise<EmbeddedBroker> {
  const host = opts.host ?? '127.0.0.1';
  const log = opts.log ?? new Logger({ source: 'embedded-broker' });
  const denials = new RateLimitedLog(log);
  const passwords = new PasswordCheckCache();
  const clientIds = new ClientIdOwners();
  const persistence = await retainedOnDisk(new RetainedFiles(path.join(opts.dataDir, 'retained'), log));
  let messagesIn = 0;
  let messagesOut = 0;
  let devicesAdmitted = false;

  /** The client's rights, as long as its account still exists with the password it connected with. */
  const currentAuth = (client: Client | null): ClientAuth | undefined => {
    const auth = client ? (client as AuthedClient)[AUTH] : undefined;
    if (!auth) return undefined;
    const account = opts.accounts.lookup(auth.username);
    if (account?.passwordHash !== auth.passwordHash) return undefined; // removed or re-keyed since: rights gone
    return auth;
  };

  const broker = await Aedes.createBroker({
    persistence,
    authenticate(client, username, password, done) {
      const refuse = (why: string, err = notAuthorized('not authorized')) => {
        // The password never appears in the log; the username is not a secret.
        denials.warn(`connect:${username ?? ''}`, 'connection refused', { clientId: client.id, username: username ?? '', why });
        done(err, false);
      };
      if (!username) return refuse('no username');
      const account = opts.accounts.lookup(username);
      if (!account) {
        passwords.forget(username);
        return refuse('unknown user');
      }
      if (!password) return refuse('no password');
      passwords.check(account, password).then((ok) => {
        if (!ok) return refuse('wrong password');
        if (!devicesAdmitted && account.role.kind !== 'controller') {
          return refuse('the controller has not subscribed yet', serverUnavailable('controller starting'));
        }
        if (!clientIds.mayTake(client.id, username)) {
          return refuse('client id held by another account', identifierRejected('client id in use'));
        }
        (client as AuthedClient)[AUTH] = { username, role: account.role, passwordHash: account.passwordHash };
        done(null, true);
      }, (err: Error) => refuse(`password check failed: ${err.message}`));
    },
    authorizePublish(client, packet, done) {
      const auth = currentAuth(client);
      if (packet.topic.startsWith('$SYS') || !auth || !mayPublish(auth.role, packet.topic)) {
        denials.warn(`publish:${auth?.username ?? ''}`, 'publish denied; aedes disconnects the client', {
          clientId: client?.id, username: auth?.username, topic: packet.topic,
        });
        return done(new Error('publish not authorized'));
      }
      // Counted here, not on aedes's 'publish' event: that fires only after delivery, so stats would lag what subscribers saw.
      messagesIn++;
      done(null);
    },
    authorizeSubscribe(client, sub, done) {
      const auth = currentAuth(client);
      if (!auth || !maySubscribe(auth.role, sub.topic)) {
        denials.warn(`subscribe:${auth?.username ?? ''}`, 'subscription refused', {
          clientId: client.id, username: auth?.username, filter: sub.topic,
        });
        return done(null, null); // SUBACK 0x80 for this filter; the client stays connected
      }
      done(null, sub);
    },
    // Defence in depth, and needed: aedes stores every filter of a SUBSCRIBE
    // packet in a clean:false session once one of them is granted, so refused
    // filters still collect offline messages. Nothing reaches a client its role may not read.
    authorizeForward(client, packet) {
      const auth = currentAuth(client);
      if (!auth || !maySubscribe(auth.role, packet.topic)) return null;
      messagesOut++;
      return packet;
    },
  });

  broker.on('clientReady', (client) => {
    const auth = (client as AuthedClient)[AUTH];
    if (auth) clientIds.connected(client, auth.username);
  });
  broker.on('clientDisconnect', (client) => clientIds.disconnected(client));
  broker.on('clientError', (client, err) => log.debug('client error', { clientId: client.id, error: err.message }));
  broker.on('connectionError', (_client, err) => log.debug('connection error', { error: err.message }));
  // aedes emits 'error' (a failing persistence) though its types do not list it; unhandled, it would throw.
  const emitter: EventEmitter = broker;
  emitter.on('error', (err: Error) => log.error('broker error', { error: err }));

  const server = opts.tls
    ? tls.createServer({ key: opts.tls.keyPem, cert: opts.tls.certPem, minVersion: 'TLSv1.2' }, broker.handle)
    : net.createServer(broker.handle);
  // Connections that never finish CONNECT (or the TLS handshake) are unknown to
  // aedes; close() destroys them so the port is free when it resolves.
  const sockets = new Set<net.Socket>();
  server.on('connection', (socket: net.Socket) => {
    sockets.add(socket);
    // aedes answers in several small writes; with Nagle on, a TLS CONNACK waited
    // for the client's delayed ACK: 54 ms per connect instead of 12 (measured).
    socket.setNoDelay(true);
    socket.once('close', () => sockets.delete(socket));
  });
  server.on('tlsClientError', (err: Error) => log.debug('TLS handshake failed', { error: err.message }));

  const closeBrokerAndPersistence = async (): Promise<void> => {
    await new Promise<void>((resolve) => broker.close(() => resolve()));
    await persistence.destroy();
  };

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    await closeBrokerAndPersistence();
    throw err;
  }
  server.on('error', (err) => log.error('broker listener error', { error: err }));

  const port = (server.address() as net.AddressInfo).port;
  const url = `${opts.tls ? 'mqtts' : 'mqtt'}://${host.includes(':') ? `[${host}]` : host}:${port}`;
  log.info('embedded MQTT broker listening', { url });

  let closing: Promise<void> | undefined;
  return {
    url,
    port,
    stats: () => ({ clients: broker.connectedClients, messagesIn, messagesOut }),
    admitDevices: () => { devicesAdmitted = true; },
    close() {
      closing ??= (async () => {
        const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
        const brokerClosed = closeBrokerAndPersistence(); // closes the clients aedes knows
        for (const socket of sockets) socket.destroy(); // and these, the ones it does not know yet
        await Promise.all([brokerClosed, serverClosed]);
        log.info('embedded MQTT broker closed', { url });
      })();
      return closing;
    },
  };
}

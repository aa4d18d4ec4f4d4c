// A slice of the simulated fleet, in a process of its own: each device a real
// mqtt.js client (MQTT 3.1.1, clean:false, client id = its UUID, its own broker
// account, a signed offline will) that says online at connect, subscribes to its
// config, then sends signed app info (QoS 1, retained) and metrics (QoS 0) at the
// cadence the parent gives, each device at its own phase so the load is even.
// Parent messages: start (devices, with their keys and passwords: over IPC, never
// on disk), go, stats, exit.
import { randomUUID } from 'node:crypto';
import mqtt, { type MqttClient } from 'mqtt';
import { seal } from '../api/envelope';
import { keyId, signerFor, type Signer } from '../lib/keys';
import { KINDS } from '../api/messages';
import { topics } from '../api/topics';
import { mqttOptions } from '../lib/mqtt-options';
import { appInfoBody, metricsBody, statusBody, type SimIdentity } from './fleet-bodies';

export interface SimDevice extends SimIdentity {
  /** Position in the whole fleet: spreads the devices' phases over the interval. */
  index: number;
  publicKey: string;
  seed: string;
  password: string;
}

export type SimCommand =
  | { type: 'start'; url: string; caPem: string; devices: SimDevice[]; concurrency: number }
  | { type: 'go'; metricsS: number; infoS: number; seconds: number; fleetSize: number }
  | { type: 'stats' }
  | { type: 'exit' };

type Kind = 'status' | 'info' | 'metrics';
export interface SimStats {
  sent: Record<Kind, number>;
  /** PUBACKs for the QoS 1 messages (status, info). */
  acked: Record<'status' | 'info', number>;
  bytes: Record<Kind, number>;
  /** Metrics not sent because the device was offline at the time (QoS 0 is not queued). */
  skipped: number;
  publishErrors: number;
  connected: number;
  /** Connections after the first, summed over devices: a broker or network hiccup shows here. */
  reconnects: number;
}

interface Sim {
  dev: SimDevice;
  client: MqttClient;
  signer: Signer;
  kid: string;
  connects: number;
  infoSeq: number;
  metricsSeq: number;
}

const CONNECT_WAIT_MS = 30_000;
const END_WAIT_MS = 5000;

const stats: SimStats = {
  sent: { status: 0, info: 0, metrics: 0 },
  acked: { status: 0, info: 0 },
  bytes: { status: 0, info: 0, metrics: 0 },
  skipped: 0, publishErrors: 0, connected: 0, reconnects: 0,
};
const sims: Sim[] = [];
const timers: NodeJS.Timeout[] = [];
const send = (m: unknown): void => void process.send?.(m);

function publish(s: Sim, kind: Kind, topic: string, payload: Buffer, qos: 0 | 1, retain: boolean): void {
  stats.sent[kind]++;
  stats.bytes[kind] += payload.length;
  s.client.publish(topic, payload, { qos, retain }, (err) => {
    if (err) stats.publishErrors++;
    else if (kind !== 'metrics') stats.acked[kind]++;
  });
}

/** One device's connection; resolves at its first CONNACK, rejects (and gives up) on failure. */
function connectDevice(dev: SimDevice, url: string, caPem: string): Promise<Sim> {
  const signer = signerFor({ publicKey: dev.publicKey, seed: dev.seed });
  const kid = keyId(dev.publicKey);
  const bootId = randomUUID();
  const will = seal(KINDS.status, statusBody(dev, 'offline', bootId, new Date()), signer, kid);
  const client = mqtt.connect(url, mqttOptions({ url, caPem, username: dev.deviceId, password: dev.password }, {
    clientId: dev.deviceId,
    clean: false,
    reconnectPeriod: 1000 + Math.floor(Math.random() * 1000),
    will: { topic: topics.status(dev.deviceId), payload: will, qos: 1, retain: true },
  }));
  const sim: Sim = { dev, client, signer, kid, connects: 0, infoSeq: 0, metricsSeq: 0 };
  client.on('connect', () => {
    if (++sim.connects > 1) stats.reconnects++;
    client.subscribe(topics.config(dev.deviceId), { qos: 1 });
    publish(sim, 'status', topics.status(dev.deviceId), seal(KINDS.status, statusBody(dev, 'online', bootId, new Date()), signer, kid), 1, true);
  });
  return new Promise((resolve, reject) => {
    const fail = (why: string): void => {
      clearTimeout(timer);
      client.end(true);
      reject(new Error(`${dev.serial}: ${why}`));
    };
    const timer = setTimeout(() => fail(`no CONNACK within ${CONNECT_WAIT_MS / 1000} s`), CONNECT_WAIT_MS);
    client.once('connect', () => (clearTimeout(timer), resolve(sim)));
    client.once('error', (err) => fail(err.message));
  });
}

/** Connects every device, `concurrency` handshakes at a time (a thousand at once would time some out). */
async function connectAll(c: Extract<SimCommand, { type: 'start' }>): Promise<void> {
  const t0 = performance.now();
  const errors: string[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < c.devices.length) {
      const dev = c.devices[next++]!;
      try {
        sims.push(await connectDevice(dev, c.url, c.caPem));
      } catch (err) {
        errors.push((err as Error).message);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, c.concurrency) }, worker));
  send({ type: 'connected', ms: performance.now() - t0, ok: sims.length, failed: errors.length, errors: errors.slice(0, 5) });
}

function sendInfo(s: Sim): void {
  s.infoSeq++;
  const body = appInfoBody(s.dev, s.infoSeq, s.infoSeq - 1, new Date());
  publish(s, 'info', topics.info(s.dev.deviceId, 'app', s.dev.appId), seal(KINDS.info, body, s.signer, s.kid), 1, true);
}

function sendMetrics(s: Sim, intervalS: number): void {
  // QoS 0 while offline would go out late, out of its time (mqttOptions does not queue it either).
  if (!s.client.connected) {
    stats.skipped++;
    return;
  }
  s.metricsSeq++;
  const body = metricsBody(s.dev, s.metricsSeq, intervalS, new Date());
  publish(s, 'metrics', topics.metrics(s.dev.deviceId), seal(KINDS.metrics, body, s.signer, s.kid), 0, false);
}

/** Every `everyMs`, first after `firstMs`: one timer chain per device and kind. */
function every(firstMs: number, everyMs: number, fn: () => void): void {
  timers.push(setTimeout(() => {
    fn();
    timers.push(setInterval(fn, everyMs));
  }, firstMs));
}

/** Sends for `seconds`, then stops every timer and says so with the totals. */
function go(c: Extract<SimCommand, { type: 'go' }>): void {
  const infoMs = c.infoS * 1000;
  const metricsMs = c.metricsS * 1000;
  for (const s of sims) {
    // Evenly spread over the interval by fleet position, with a little jitter inside each slot.
    every(((s.dev.index + Math.random()) / c.fleetSize) * infoMs, infoMs, () => sendInfo(s));
    every(((s.dev.index + Math.random()) / c.fleetSize) * metricsMs, metricsMs, () => sendMetrics(s, c.metricsS));
  }
  setTimeout(() => {
    for (const t of timers) clearTimeout(t);
    timers.length = 0;
    send({ type: 'stopped', stats: snapshot() });
  }, c.seconds * 1000);
}

function snapshot(): SimStats {
  stats.connected = sims.filter((s) => s.client.connected).length;
  return structuredClone(stats);
}

/** Clean disconnects (no will): the controller should not see a thousand offline statuses at the end. */
async function exit(): Promise<void> {
  for (const t of timers) clearTimeout(t);
  await Promise.all(sims.map((s) => Promise.race([
    new Promise<void>((resolve) => s.client.end(false, {}, () => resolve())),
    new Promise<void>((resolve) => setTimeout(resolve, END_WAIT_MS).unref()),
  ])));
  process.exit(0);
}

process.on('message', (m: SimCommand) => {
  if (m.type === 'start') void connectAll(m);
  else if (m.type === 'go') go(m);
  else if (m.type === 'stats') send({ type: 'stats', stats: snapshot() });
  else if (m.type === 'exit') void exit();
});
process.on('disconnect', () => process.exit(1));

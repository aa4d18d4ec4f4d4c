// zedagent's MQTT link to the controller: one persistent session (clean: false,
// client id = the device UUID), the signed config and log-ack subscriptions, an online
// status on every connect and a signed offline status as the last will. What
// to send and when is the outbox's and the reporter's business.
import { randomUUID } from 'node:crypto';
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { Duplex } from 'node:stream';
import { MqttClient } from 'mqtt';
import { seal } from '../../api/envelope';
import type { Signer } from '../../lib/keys';
import { KINDS, type StatusBody } from '../../api/messages';
import { topics } from '../../api/topics';
import { brokerAddress, mqttOptions, type BrokerEndpoint } from '../../lib/mqtt-options';
import { DeferredStream, openProxyTunnel, redactProxy } from '../../lib/proxy-tunnel';
import type { Logger } from '../../lib/log';
import type { OutMessage } from './outbox';

/** mqtt.js gives a connection 10 s (lib/mqtt-options.ts); the proxy's part of it gets no more. */
const CONNECT_TIMEOUT_MS = 10_000;

export interface LinkEvents {
  onConfig(payload: Buffer): void;
  /** The controller stored log batches (a signed log-ack, not yet verified). */
  onLogAck(payload: Buffer): void;
  onUp(): void;
  onDown(reason: string): void;
}

export class ControllerLink {
  /** Random per process start: tells the controller a fresh connection from a stale will. */
  readonly bootId = randomUUID();
  private client: MqttClient | undefined;
  private up = false;
  lastError: string | undefined;
  connects = 0;
  private proxyInUse: string | undefined;

  constructor(
    private readonly endpoint: BrokerEndpoint,
    private readonly deviceId: string,
    private readonly signer: Signer,
    private readonly kid: string,
    private readonly log: Logger,
    private readonly events: LinkEvents,
    /** The HTTP proxy to reach the broker through, asked at every (re)connect (nim's port configuration). */
    private readonly proxy: () => string | undefined = () => undefined,
  ) {}

  get connected(): boolean {
    return this.up;
  }

  start(): void {
    const will = this.status('offline', 'will');
    // Our own stream builder: mqtt.js calls it at every (re)connect, so a proxy nim applies later is used then.
    const client = new MqttClient(() => this.openStream(), mqttOptions(this.endpoint, {
      clientId: this.deviceId,
      clean: false,
      // Spread reconnects of a fleet after a broker restart.
      reconnectPeriod: 1000 + Math.floor(Math.random() * 1000),
      will: { topic: topics.status(this.deviceId), payload: will, qos: 1, retain: true },
    }));
    this.client = client;
    client.on('connect', (ack) => {
      this.connects++;
      this.lastError = undefined;
      this.log.info('connected to the controller broker', { url: this.endpoint.url, sessionPresent: ack.sessionPresent });
      const down = { [topics.config(this.deviceId)]: { qos: 1 as const }, [topics.logAck(this.deviceId)]: { qos: 1 as const } };
      client.subscribe(down, (err, granted) => {
        const refused = granted?.filter((g) => g.qos === 128).map((g) => g.topic) ?? [];
        if (err || refused.length) this.log.error('cannot subscribe to this device\'s down topics', { error: err?.message ?? `refused by the broker: ${refused.join(', ')}` });
      });
      client.publish(topics.status(this.deviceId), this.status('online'), { qos: 1, retain: true });
      this.up = true;
      this.events.onUp();
    });
    client.on('message', (topic, payload) => {
      if (topic === topics.config(this.deviceId)) this.events.onConfig(payload);
      else if (topic === topics.logAck(this.deviceId)) this.events.onLogAck(payload);
    });
    client.on('error', (err) => {
      if (this.lastError !== err.message) this.log.warn('controller broker link error', { error: err.message });
      this.lastError = err.message;
    });
    client.on('close', () => this.down(this.lastError ?? 'connection closed'));
    client.on('offline', () => this.down(this.lastError ?? 'offline'));
  }

  /** QoS 1 publish; resolves on PUBACK, rejects when not connected or refused. */
  send(msg: OutMessage): Promise<void> {
    const client = this.client;
    if (!client || !this.up) return Promise.reject(new Error('not connected'));
    return new Promise((resolve, reject) => {
      client.publish(msg.topic, msg.payload, { qos: 1, retain: msg.retain }, (err) => (err ? reject(err) : resolve()));
    });
  }

  /** Fire-and-forget QoS 0 (metrics): dropped when not connected. */
  sendLossy(topic: string, payload: string): boolean {
    if (!this.client || !this.up) return false;
    this.client.publish(topic, payload, { qos: 0, retain: false });
    return true;
  }

  /** Clean stop: say offline (shutdown), then close, waiting at most 2 s for the broker. */
  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (!client) return;
    if (this.up) {
      await Promise.race([
        new Promise<void>((resolve) => client.publish(topics.status(this.deviceId), this.status('offline', 'shutdown'), { qos: 1, retain: true }, () => resolve())),
        new Promise<void>((resolve) => setTimeout(resolve, 2000).unref()),
      ]);
    }
    this.up = false;
    await new Promise<void>((resolve) => client.end(false, {}, () => resolve()));
  }

  /** TCP (TLS for mqtts) to the broker, through the port's HTTP proxy when it has one. */
  private openStream(): Duplex {
    const { host, port, tls: secure } = brokerAddress(this.endpoint.url);
    const tlsOptions = { ...(net.isIP(host) ? {} : { servername: host }), ...(this.endpoint.caPem ? { ca: this.endpoint.caPem } : {}), rejectUnauthorized: true };
    const proxy = this.proxy();
    if (!proxy) {
      this.proxyInUse = undefined;
      return secure ? tls.connect({ host, port, ...tlsOptions }) : net.connect({ host, port });
    }
    if (this.proxyInUse !== proxy) this.log.info('reaching the controller broker through a proxy', { proxy: redactProxy(proxy) });
    this.proxyInUse = proxy;
    return new DeferredStream(async (track) => {
      const sock = await openProxyTunnel(proxy, host, port, { onSocket: track, timeoutMs: CONNECT_TIMEOUT_MS });
      if (!secure) return sock;
      return new Promise<net.Socket>((resolve, reject) => {
        const s = tls.connect({ socket: sock, ...tlsOptions });
        track(s);
        s.once('secureConnect', () => resolve(s));
        s.once('error', (err) => { s.destroy(); reject(err); });
      });
    });
  }

  private down(reason: string): void {
    if (!this.up) return;
    this.up = false;
    this.log.warn('disconnected from the controller broker', { reason });
    this.events.onDown(reason);
  }

  private status(state: 'online' | 'offline', reason?: string): string {
    const body: StatusBody = { deviceId: this.deviceId, state, bootId: this.bootId, time: new Date().toISOString(), ...(reason ? { reason } : {}) };
    return seal(KINDS.status, body, this.signer, this.kid).toString();
  }
}

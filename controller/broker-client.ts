// The controller's MQTT connections: the long-lived one of `zedctl serve`, and
// the short ones of commands that publish (config set, epoch bump). A publish is
// done when the broker's PUBACK arrives; aedes answers a denied publish by
// dropping the connection instead, so every wait is bounded and a close fails it.
import { randomBytes } from 'node:crypto';
import { connect, type MqttClient } from 'mqtt';
import { mqttOptions, type BrokerEndpoint } from '../lib/mqtt-options';

export const CONNECT_TIMEOUT_MS = 10_000;
export const PUBLISH_TIMEOUT_MS = 10_000;

export class BrokerError extends Error {
  override name = 'BrokerError';
}

/** Connects once (no automatic reconnect): for commands that do one thing and leave. */
export async function connectOnce(ep: BrokerEndpoint, what = 'zedctl'): Promise<MqttClient> {
  const opts = mqttOptions(ep, { clientId: `${what}-${randomBytes(6).toString('hex')}`, clean: true, reconnectPeriod: 0 });
  opts.connectTimeout = CONNECT_TIMEOUT_MS;
  const client = connect(ep.url, opts);
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer within ${CONNECT_TIMEOUT_MS / 1000} s`)), CONNECT_TIMEOUT_MS);
      client.once('connect', () => (clearTimeout(timer), resolve()));
      client.once('error', (err) => (clearTimeout(timer), reject(err)));
      client.once('close', () => (clearTimeout(timer), reject(new Error('connection closed'))));
    });
  } catch (err) {
    client.end(true);
    throw new BrokerError(`cannot connect to the broker at ${ep.url} as ${ep.username ?? '(anonymous)'}: ${(err as Error).message}`);
  }
  return client;
}

/** Publishes QoS 1 and resolves on the broker's PUBACK. */
export function publishAcked(client: MqttClient, topic: string, payload: Buffer, retain: boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    const fail = (why: string): void => {
      cleanup();
      reject(new BrokerError(`publish to ${topic} failed: ${why}`));
    };
    const onClose = (): void => fail('the broker closed the connection (not authorized?)');
    const timer = setTimeout(() => fail(`no PUBACK within ${PUBLISH_TIMEOUT_MS / 1000} s`), PUBLISH_TIMEOUT_MS);
    const cleanup = (): void => {
      clearTimeout(timer);
      client.off('close', onClose);
    };
    client.once('close', onClose);
    client.publish(topic, payload, { qos: 1, retain }, (err) => {
      if (err) return fail(err.message);
      cleanup();
      resolve();
    });
  });
}

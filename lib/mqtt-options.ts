// How every zedbox MQTT client connects (device, controller, tools, tests): MQTT
// 3.1.1, which both the embedded broker (aedes) and Mosquitto speak, the
// broker's CA when it is ours, and sessions that outlive a disconnect.
import type { IClientOptions } from 'mqtt';

export interface BrokerEndpoint {
  /** mqtt://host:port or mqtts://host:port */
  url: string;
  /** PEM of the CA that signed the broker's certificate (mqtts with a private CA). */
  caPem?: string;
  username?: string;
  password?: string;
}

export interface ClientIdentity {
  clientId: string;
  /** false: the broker keeps the session (subscriptions and queued QoS 1 messages) while we are away. */
  clean: boolean;
  will?: IClientOptions['will'];
  /** ms between reconnect attempts by mqtt.js itself; 0 leaves reconnecting to the caller. */
  reconnectPeriod?: number;
}

export function mqttOptions(ep: BrokerEndpoint, id: ClientIdentity): IClientOptions {
  const reconnectPeriod = id.reconnectPeriod ?? 1000;
  return {
    protocolVersion: 4,
    clientId: id.clientId,
    clean: id.clean,
    keepalive: 30,
    connectTimeout: 10_000,
    reconnectPeriod,
    // A refused CONNACK is retried like a lost connection: mqtt.js otherwise stops reconnecting for
    // good, and a device the embedded broker turned away while its controller was starting ("server
    // unavailable") stayed offline until zedbox restarted.
    reconnectOnConnackError: reconnectPeriod > 0,
    // QoS 0 sent while disconnected would be sent late, out of their time: drop them.
    queueQoSZero: false,
    ...(ep.username !== undefined ? { username: ep.username } : {}),
    ...(ep.password !== undefined ? { password: ep.password } : {}),
    ...(ep.caPem ? { ca: ep.caPem, rejectUnauthorized: true } : {}),
    ...(id.will ? { will: id.will } : {}),
  };
}

/** Where a broker URL points: host (IPv6 without brackets), port (mqtt 1883, mqtts 8883 by default), TLS or not. */
export function brokerAddress(url: string): { host: string; port: number; tls: boolean } {
  const u = new URL(url);
  const tls = u.protocol === 'mqtts:';
  return { host: u.hostname.replace(/^\[|\]$/g, ''), port: u.port ? Number(u.port) : tls ? 8883 : 1883, tls };
}

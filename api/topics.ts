// The controller API's MQTT topics (version 1). Everything lives under one
// prefix; a device's traffic under zedbox/v1/dev/<uuid>/, split by direction
// so a broker ACL can let a device write only "up" and read only "down" of its
// own subtree. docs/controller-api.md is the reference; this is its code.
export const API_ROOT = 'zedbox/v1';

/** Serials travel in topics: no wildcards, slashes or spaces. */
export const SERIAL_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$';
export const SERIAL_RE = new RegExp(SERIAL_PATTERN);
/** Device UUIDs as the controller assigns them (lowercase, as they appear in topics). */
export const DEVICE_UUID_PATTERN = '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$';
export const UUID_RE = new RegExp(DEVICE_UUID_PATTERN);

/** Kinds of info object a device reports, one retained topic per object. */
export const INFO_KINDS = ['device', 'app', 'volume', 'contentTree', 'networkInstance', 'config'] as const;
export type InfoKind = (typeof INFO_KINDS)[number];

export const topics = {
  /** device → controller, QoS 1: the onboarding request. */
  onboardRequest: (serial: string) => `${API_ROOT}/onboard/${serial}/request`,
  /** controller → device, QoS 1, retained: the answer (the broker credentials inside are sealed to the device). */
  onboardReply: (serial: string) => `${API_ROOT}/onboard/${serial}/reply`,
  /** controller → device, QoS 1, retained: the signed desired config. */
  config: (uuid: string) => `${API_ROOT}/dev/${uuid}/down/config`,
  /** device → controller, QoS 1, retained: the latest state of one object. */
  info: (uuid: string, kind: InfoKind, id: string) => `${API_ROOT}/dev/${uuid}/up/info/${kind}/${id}`,
  /** device → controller, QoS 0: periodic metrics. */
  metrics: (uuid: string) => `${API_ROOT}/dev/${uuid}/up/metrics`,
  /** device → controller, QoS 1, retained: online, or offline (also the last will). */
  status: (uuid: string) => `${API_ROOT}/dev/${uuid}/up/status`,
  /** device → controller, QoS 1: a batch of log lines (LogsBody). */
  logs: (uuid: string) => `${API_ROOT}/dev/${uuid}/up/logs`,
  /** controller → device, QoS 1: which log batches the controller stored (LogAckBody). */
  logAck: (uuid: string) => `${API_ROOT}/dev/${uuid}/down/logack`,
  /** Subtrees for ACLs. */
  deviceUp: (uuid: string) => `${API_ROOT}/dev/${uuid}/up/#`,
  deviceDown: (uuid: string) => `${API_ROOT}/dev/${uuid}/down/#`,
} as const;

/** Filters the controller subscribes to (under $share/<group>/ on a broker that has shared subscriptions). */
export const controllerFilters = {
  onboard: `${API_ROOT}/onboard/+/request`,
  info: `${API_ROOT}/dev/+/up/info/#`,
  metrics: `${API_ROOT}/dev/+/up/metrics`,
  status: `${API_ROOT}/dev/+/up/status`,
  logs: `${API_ROOT}/dev/+/up/logs`,
} as const;

export function shared(group: string, filter: string): string {
  return `$share/${group}/${filter}`;
}

export type ParsedTopic =
  | { type: 'onboardRequest' | 'onboardReply'; serial: string }
  | { type: 'config' | 'metrics' | 'status' | 'logs' | 'logAck'; uuid: string }
  | { type: 'info'; uuid: string; kind: InfoKind; id: string };

/** Reads an API topic back into its parts; undefined for anything else (ignored, and counted). */
export function parseTopic(topic: string): ParsedTopic | undefined {
  const parts = topic.split('/');
  if (parts[0] !== 'zedbox' || parts[1] !== 'v1') return undefined;
  if (parts[2] === 'onboard' && parts.length === 5 && SERIAL_RE.test(parts[3]!)) {
    if (parts[4] === 'request') return { type: 'onboardRequest', serial: parts[3]! };
    if (parts[4] === 'reply') return { type: 'onboardReply', serial: parts[3]! };
    return undefined;
  }
  if (parts[2] !== 'dev' || !UUID_RE.test(parts[3] ?? '')) return undefined;
  const uuid = parts[3]!;
  const rest = parts.slice(4).join('/');
  if (rest === 'down/config') return { type: 'config', uuid };
  if (rest === 'up/metrics') return { type: 'metrics', uuid };
  if (rest === 'up/status') return { type: 'status', uuid };
  if (rest === 'up/logs') return { type: 'logs', uuid };
  if (rest === 'down/logack') return { type: 'logAck', uuid };
  if (parts[4] === 'up' && parts[5] === 'info' && parts.length === 8 && (INFO_KINDS as readonly string[]).includes(parts[6]!) && parts[7]) {
    return { type: 'info', uuid, kind: parts[6] as InfoKind, id: parts[7] };
  }
  return undefined;
}

// The bodies of the controller API's messages (inside the signed envelope).
// Every body names its device and carries a time; sequence numbers let the
// receiver drop what is older than what it already has.
import { Type, type Static } from '@sinclair/typebox';
import { SealedSchema } from '../lib/secrets';
import { DEVICE_UUID_PATTERN, SERIAL_PATTERN, INFO_KINDS } from './topics';
import { Key32B64 } from '../lib/keys';

const strict = { additionalProperties: false } as const;
const Uuid = Type.String({ pattern: DEVICE_UUID_PATTERN });
const Time = Type.String({ minLength: 20, maxLength: 40 });

export const KINDS = {
  config: 'config', info: 'info', metrics: 'metrics', status: 'status',
  onboardRequest: 'onboard-request', onboardReply: 'onboard-reply',
  logs: 'logs', logAck: 'log-ack',
} as const;

/** Onboarding: the device proves it holds the signing key it names (the envelope is signed with it). */
export const OnboardRequestSchema = Type.Object(
  {
    serial: Type.String({ pattern: SERIAL_PATTERN }),
    /** The one-time onboarding token provisioned with the device (hashed by the controller). */
    token: Type.String({ minLength: 8, maxLength: 256 }),
    signPublicKey: Key32B64,
    boxPublicKey: Key32B64,
    /** Random, echoed in the reply: a reply to an older request is not accepted. */
    nonce: Type.String({ minLength: 16, maxLength: 64 }),
    time: Time,
    zedboxVersion: Type.Optional(Type.String({ maxLength: 64 })),
  },
  strict,
);
export type OnboardRequest = Static<typeof OnboardRequestSchema>;

export const ONBOARD_REFUSALS = ['not-registered', 'bad-token', 'pending', 'conflict', 'invalid'] as const;

export const OnboardReplySchema = Type.Union([
  Type.Object(
    {
      serial: Type.String({ pattern: SERIAL_PATTERN }),
      nonce: Type.String(),
      ok: Type.Literal(true),
      deviceId: Uuid,
      /** The device's own broker account; the password sealed to the device's box key. */
      broker: Type.Object({ username: Type.String({ minLength: 1 }), password: SealedSchema }, strict),
      time: Time,
    },
    strict,
  ),
  Type.Object(
    {
      serial: Type.String({ pattern: SERIAL_PATTERN }),
      nonce: Type.String(),
      ok: Type.Literal(false),
      code: Type.Union(ONBOARD_REFUSALS.map((c) => Type.Literal(c))),
      error: Type.String(),
      time: Time,
    },
    strict,
  ),
]);
export type OnboardReply = Static<typeof OnboardReplySchema>;

/**
 * The desired config. seq grows with every config the controller issues for the device: the
 * device refuses one below what it applied (a replay), and treats an equal one as a repeat.
 * epoch changes when the controller lost or reset its view: the device then resends all info.
 */
export const ConfigBodySchema = Type.Object(
  {
    deviceId: Uuid,
    seq: Type.Integer({ minimum: 1 }),
    epoch: Type.Integer({ minimum: 0 }),
    issuedAt: Time,
    /** The device config document (docs/device-config.md); checked by the device's own schema. */
    config: Type.Unknown(),
  },
  strict,
);
export type ConfigBody = Static<typeof ConfigBodySchema>;

export const InfoBodySchema = Type.Object(
  {
    deviceId: Uuid,
    kind: Type.Union(INFO_KINDS.map((k) => Type.Literal(k))),
    id: Type.String({ minLength: 1, maxLength: 128 }),
    /** Per device, grows with every info message it sends (across restarts). */
    seq: Type.Integer({ minimum: 0 }),
    time: Time,
    /** The object's latest state; absent with deleted: true. */
    value: Type.Optional(Type.Unknown()),
    deleted: Type.Optional(Type.Literal(true)),
  },
  strict,
);
export type InfoBody = Static<typeof InfoBodySchema>;

export const MetricsBodySchema = Type.Object(
  {
    deviceId: Uuid,
    seq: Type.Integer({ minimum: 0 }),
    time: Time,
    intervalSeconds: Type.Number({ minimum: 0 }),
    device: Type.Unknown(),
    apps: Type.Array(Type.Unknown()),
  },
  strict,
);
export type MetricsBody = Static<typeof MetricsBodySchema>;

export const StatusBodySchema = Type.Object(
  {
    deviceId: Uuid,
    state: Type.Union([Type.Literal('online'), Type.Literal('offline')]),
    /** For offline: 'will' when the broker sent it for a lost link, 'shutdown' for a clean stop. */
    reason: Type.Optional(Type.String({ maxLength: 64 })),
    /** Random per process start: tells a late offline will of an old connection from a fresh one. */
    bootId: Type.String({ minLength: 1, maxLength: 64 }),
    time: Time,
  },
  strict,
);
export type StatusBody = Static<typeof StatusBodySchema>;

/**
 * One batch of log lines (device → controller, QoS 1). seq grows by one per batch for the
 * device's lifetime; the controller stores a batch once (a repeat is acknowledged again) and
 * acknowledges with LogAckBody, after which the device deletes it.
 */
export const LogsBodySchema = Type.Object(
  {
    deviceId: Uuid,
    /** 12 digits at most: the controller stores batches under their zero-padded seq. */
    seq: Type.Integer({ minimum: 1, maximum: 999_999_999_999 }),
    firstAt: Time,
    lastAt: Time,
    lines: Type.Integer({ minimum: 0 }),
    rawBytes: Type.Integer({ minimum: 0 }),
    /** gzip of NDJSON, one api/logs.ts LogLine per line; base64. */
    gzip: Type.String({ maxLength: 256 * 1024 }),
    /** Lines lost on the device since the previous batch it kept (queue quota, agent buffers), with why. */
    droppedBefore: Type.Optional(Type.Object({
      lines: Type.Integer({ minimum: 0 }), batches: Type.Integer({ minimum: 0 }), reason: Type.String({ maxLength: 200 }),
    }, strict)),
  },
  strict,
);
export type LogsBody = Static<typeof LogsBodySchema>;

/** controller → device, QoS 1, not retained: these batches are stored; the device may delete them. */
export const LogAckBodySchema = Type.Object(
  {
    deviceId: Uuid,
    seqs: Type.Array(Type.Integer({ minimum: 1, maximum: 999_999_999_999 }), { minItems: 1, maxItems: 1000 }),
    time: Time,
  },
  strict,
);
export type LogAckBody = Static<typeof LogAckBodySchema>;

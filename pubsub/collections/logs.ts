// Log batches on their way to the controller: logmanager publishes each closed,
// compressed batch until zedagent reports that the controller stored it
// (LogBatchAck), then deletes it from its disk queue and withdraws it.
import { Type, type Static } from '@sinclair/typebox';
import { defineCollection } from '../catalog';
import { Counter, Time } from './common';

const strict = { additionalProperties: false } as const;

/** Batches are cut well below this compressed; base64 and metadata must still fit one bus value. */
export const LOG_BATCH_MAX_GZIP_BYTES = 96 * 1024;

/** The largest seq: keys and the controller's file names have 12 digits. */
export const LOG_SEQ_MAX = 999_999_999_999;

/** Batch keys sort in sequence order: 12 digits, zero-padded. */
export function logBatchKey(seq: number): string {
  return String(seq).padStart(12, '0');
}

export const LogBatchSchema = Type.Object(
  {
    /** Grows by one per batch for the device's lifetime (persisted); gaps are batches dropped and counted. */
    seq: Type.Integer({ minimum: 1, maximum: LOG_SEQ_MAX }),
    firstAt: Time,
    lastAt: Time,
    lines: Counter,
    /** Bytes of the NDJSON before compression. */
    rawBytes: Counter,
    /** gzip of NDJSON lines (api/logs.ts LogLine), base64. */
    gzip: Type.String(),
    /** Lines lost since the previous batch that was kept: the queue's quota, or an agent's buffer while logmanager was away. */
    droppedBefore: Type.Optional(Type.Object({ lines: Counter, batches: Counter, reason: Type.String() }, strict)),
  },
  strict,
);
export type LogBatch = Static<typeof LogBatchSchema>;

export const LogBatchCollection = defineCollection({
  type: 'LogBatch', owner: 'logmanager', schema: LogBatchSchema, keyOf: (v) => logBatchKey(v.seq),
  maxValueBytes: 192 * 1024,
  description: 'A compressed batch of log lines waiting for the controller to store it, keyed by its zero-padded seq',
});

export const LogBatchAckSchema = Type.Object({ seq: Type.Integer({ minimum: 1, maximum: LOG_SEQ_MAX }), storedAt: Time }, strict);
export type LogBatchAck = Static<typeof LogBatchAckSchema>;

export const LogBatchAckCollection = defineCollection({
  type: 'LogBatchAck', owner: 'zedagent', schema: LogBatchAckSchema, keyOf: (v) => logBatchKey(v.seq),
  description: 'The controller stored this log batch (its signed acknowledgement arrived), keyed like the batch',
});

export const LogManagerStatusSchema = Type.Object(
  {
    queuedBatches: Counter,
    queuedBytes: Counter,
    quotaBytes: Counter,
    sentBatches: Counter,
    sentLines: Counter,
    droppedLines: Counter,
    /** Lines the level filter kept from the controller (still in the local log). */
    filteredLines: Counter,
    oldestQueuedAt: Type.Optional(Time),
    lastAckAt: Type.Optional(Time),
    error: Type.Optional(Type.String()),
  },
  strict,
);
export type LogManagerStatus = Static<typeof LogManagerStatusSchema>;

export const LogManagerStatusCollection = defineCollection({
  type: 'LogManagerStatus', owner: 'logmanager', schema: LogManagerStatusSchema, keyOf: () => 'global',
  description: 'How the log queue stands: queued, sent, dropped and filtered counts, key "global"',
});

export const LOG_COLLECTIONS = [LogBatchCollection, LogBatchAckCollection, LogManagerStatusCollection] as const;

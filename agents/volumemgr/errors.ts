// Error records volumemgr publishes. Times stay stable while the message is the
// same, so a pass that changes nothing publishes nothing.
import type { ErrorInfo, Severity } from '../../pubsub/collections/common';

export type Entity = { type: string; id: string };

export function errorInfo(
  message: string,
  now: string,
  opts: { prev?: ErrorInfo; entities?: Entity[]; retryCondition?: string; severity?: Severity; source: string },
): ErrorInfo {
  const time = opts.prev?.error === message ? opts.prev.time : now;
  return {
    error: message,
    time,
    severity: opts.severity ?? (opts.retryCondition ? 'warning' : 'error'),
    ...(opts.retryCondition ? { retryCondition: opts.retryCondition } : {}),
    ...(opts.entities?.length ? { entities: opts.entities } : {}),
    source: opts.source,
  };
}

/** The same error with more entities (a blob's error as its content tree reports it). */
export function withEntities(err: ErrorInfo, extra: Entity[], source: string): ErrorInfo {
  const have = err.entities ?? [];
  const add = extra.filter((e) => !have.some((h) => h.type === e.type && h.id === e.id));
  return { ...err, entities: [...add, ...have], source };
}

// Docker's event stream for this instance's objects, kept open: reconnects with
// backoff when it ends or the engine restarts, and tells the caller after each
// reconnect so it can re-inspect everything it might have missed.
import type Docker from 'dockerode';
import { backoffDelay, sleep } from '../../lib/backoff';
import { LABEL_INSTANCE } from '../../lib/docker';
import type { Logger } from '../../lib/log';

export interface DockerEvent {
  Type?: string;
  Action?: string;
  Actor?: { ID?: string; Attributes?: Record<string, string> };
}

export interface EventWatchOptions {
  docker: Docker;
  instance: string;
  log: Logger;
  signal: AbortSignal;
  onEvent(e: DockerEvent): void;
  /** Called each time the stream is (re)opened: events may have been missed before it. */
  onConnected(): void;
}

export async function watchEvents(o: EventWatchOptions): Promise<void> {
  let failures = 0;
  while (!o.signal.aborted) {
    try {
      const stream = (await o.docker.getEvents({ filters: { label: [`${LABEL_INSTANCE}=${o.instance}`] } })) as NodeJS.ReadableStream & { destroy(): void };
      failures = 0;
      o.onConnected();
      await consume(stream, o);
      if (!o.signal.aborted) o.log.warn('docker event stream ended; reconnecting');
    } catch (err) {
      if (o.signal.aborted) break;
      failures++;
      o.log.warn('docker event stream failed; reconnecting', { err: (err as Error).message, failures });
    }
    await sleep(backoffDelay({ minMs: 500, maxMs: 10_000, jitter: 0.2 }, Math.max(1, failures)), o.signal);
  }
}

/** Reads NDJSON chunks until the stream ends or the signal aborts. */
function consume(stream: NodeJS.ReadableStream & { destroy(): void }, o: EventWatchOptions): Promise<void> {
  return new Promise((resolve) => {
    let rest = '';
    const onAbort = (): void => stream.destroy();
    o.signal.addEventListener('abort', onAbort, { once: true });
    const done = (): void => {
      o.signal.removeEventListener('abort', onAbort);
      resolve();
    };
    stream.on('data', (chunk: Buffer | string) => {
      rest += chunk.toString();
      const lines = rest.split('\n');
      rest = lines.pop() ?? '';
      for (const line of lines) {
        if (!line.trim()) continue;
        try {
          o.onEvent(JSON.parse(line) as DockerEvent);
        } catch (err) {
          o.log.warn('unreadable docker event', { line: line.slice(0, 200), err: (err as Error).message });
        }
      }
    });
    stream.on('end', done);
    stream.on('close', done);
    stream.on('error', done);
  });
}

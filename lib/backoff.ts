// One backoff policy for the whole program: exponential with jitter, capped.

export interface BackoffPolicy {
  minMs: number;
  maxMs: number;
  /** Fraction of the delay taken off at random (0.2 = up to 20 % sooner), so clients spread out even at the cap. */
  jitter: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { minMs: 1000, maxMs: 60_000, jitter: 0.2 };

/** Delay before attempt number `failures` (1 = after the first failure). */
export function backoffDelay(policy: BackoffPolicy, failures: number, random: () => number = Math.random): number {
  const exp = Math.min(policy.maxMs, policy.minMs * 2 ** Math.max(0, failures - 1));
  return Math.max(0, Math.round(exp * (1 - policy.jitter * random())));
}

/** Sleeps for `ms`, resolving early (without throwing) when the signal aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

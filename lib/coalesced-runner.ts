// One pass at a time, however often it is asked for: the loop agents reconcile
// with. Triggers that arrive during a pass coalesce into one more pass; the
// decision to stop is taken in the same synchronous step that clears `running`,
// so no trigger can land in between and wait for some later event.

export interface RunnerOptions {
  /** No pass starts once it aborts. */
  signal: AbortSignal;
  /** A pass threw: 'continue' keeps the loop (it runs again if triggered), 'stop' ends this drain. */
  onError(err: unknown): 'continue' | 'stop';
}

export class CoalescedRunner {
  private dirty = false;
  /** Set before the drain starts: a pass that triggers before its first await must not start a second drain. */
  private active = false;
  private running: Promise<void> | undefined;

  constructor(private readonly pass: () => Promise<void>, private readonly opts: RunnerOptions) {}

  trigger(): void {
    if (this.opts.signal.aborted) return;
    this.dirty = true;
    if (this.active) return;
    this.active = true;
    this.running = this.drain();
  }

  /** Resolves when no pass is running. */
  idle(): Promise<void> {
    return this.running ?? Promise.resolve();
  }

  private async drain(): Promise<void> {
    try {
      while (this.dirty && !this.opts.signal.aborted) {
        this.dirty = false;
        try {
          await this.pass();
        } catch (err) {
          if (this.opts.onError(err) === 'stop') return;
        }
      }
    } finally {
      this.active = false;
      this.running = undefined;
    }
  }
}

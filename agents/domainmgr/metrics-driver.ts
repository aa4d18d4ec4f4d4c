// Per-app CPU and memory samples (DomainMetric) every timer.metric.interval.
// A stats call takes about a second (the engine samples twice), so samples run
// concurrently, a few at a time.
import type { DomainMetricSchema } from '../../pubsub/collections/apps';
import type { Publication } from '../../pubsub/publication';
import type { AgentContext } from '../agent';
import type { ContainerDriver } from './container-driver';
import { metricFromStats } from './status';

const CONCURRENT_STATS = 4;

export interface RunningApp {
  appId: string;
  containerId: string;
}

export class MetricsSampler {
  private timer: NodeJS.Timeout | undefined;
  private intervalMs = 0;
  private busy = false;

  constructor(
    private readonly ctx: AgentContext,
    private readonly driver: ContainerDriver,
    private readonly pub: Publication<typeof DomainMetricSchema>,
    /** The apps running now, asked at each tick and again before a sample is published. */
    private readonly apps: () => RunningApp[],
  ) {}

  /** (Re)arms the timer when the interval changed. */
  schedule(intervalMs: number): void {
    if (this.timer && intervalMs === this.intervalMs) return;
    if (this.timer) clearInterval(this.timer);
    this.intervalMs = intervalMs;
    this.timer = this.ctx.setInterval(() => void this.sample(), intervalMs);
  }

  forget(appId: string): void {
    if (this.pub.get(appId)) this.pub.unpublish(appId);
  }

  /** One round of samples; apps no longer running lose their metric. Overlapping rounds are skipped. */
  async sample(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      const apps = this.apps();
      const running = new Set(apps.map((a) => a.appId));
      for (const key of this.pub.keys()) if (!running.has(key)) this.pub.unpublish(key);
      const queue = [...apps];
      const worker = async (): Promise<void> => {
        for (let a = queue.shift(); a; a = queue.shift()) await this.sampleOne(a);
      };
      await Promise.all(Array.from({ length: Math.min(CONCURRENT_STATS, queue.length) }, worker));
    } finally {
      this.busy = false;
    }
  }

  private async sampleOne(a: RunningApp): Promise<void> {
    try {
      const stats = await this.driver.stats(a.containerId);
      // The app may have stopped or gone during the second the engine took.
      if (this.ctx.signal.aborted || !this.apps().some((x) => x.appId === a.appId && x.containerId === a.containerId)) return;
      this.pub.publish(a.appId, metricFromStats(a.appId, stats, Date.now()));
    } catch (err) {
      this.ctx.log.debug('no stats for app', { appId: a.appId, err: (err as Error).message });
    }
  }
}

// Catching up from retained messages. Device info and status are retained per
// object, so the latest state of every device sits on the broker. A replica on
// shared subscriptions never sees it (shared subscriptions get no retained
// messages), and what arrived while no replica was subscribed is gone (Mosquitto
// 2.0.11 even loses shared subscriptions across its own restart). So after every
// connect a replica subscribes plainly for a moment, takes in the retained
// messages (the ingest drops what it already has), and unsubscribes once they stop.
import type { MqttClient } from 'mqtt';
import { controllerFilters } from '../api/topics';
import type { Logger } from '../lib/log';

const FILTERS = [controllerFilters.info, controllerFilters.status];
const QUIET_MS = 1500;
const MAX_MS = 60_000;

export class RetainedSweep {
  private lastRetainedAt = 0;
  private running: Promise<void> | undefined;
  retainedSeen = 0;

  constructor(private readonly mq: MqttClient, private readonly log: Logger) {
    mq.on('message', (_topic, _payload, packet) => {
      if (packet.retain) {
        this.lastRetainedAt = Date.now();
        this.retainedSeen++;
      }
    });
  }

  /** Subscribes plainly, waits for the retained messages to stop coming, unsubscribes. */
  run(): Promise<void> {
    this.running ??= this.sweep().finally(() => { this.running = undefined; });
    return this.running;
  }

  private async sweep(): Promise<void> {
    const started = Date.now();
    const before = this.retainedSeen;
    this.lastRetainedAt = started;
    try {
      await this.mq.subscribeAsync(FILTERS, { qos: 1 });
      while (Date.now() - this.lastRetainedAt < QUIET_MS && Date.now() - started < MAX_MS) {
        await new Promise((r) => setTimeout(r, 250));
      }
      await this.mq.unsubscribeAsync(FILTERS);
      this.log.info('caught up from retained device state', { messages: this.retainedSeen - before, ms: Date.now() - started });
    } catch (err) {
      this.log.warn('could not catch up from retained device state', { error: (err as Error).message });
    }
  }
}

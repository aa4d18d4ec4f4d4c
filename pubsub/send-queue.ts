// zeromq.js allows one send in flight per socket; this queues the rest in order.
// PUB and ROUTER never block (they drop past the high-water mark, which the bus
// detects by sequence numbers), so the queue drains as fast as libzmq accepts.
import type { Socket } from 'zeromq';
import { Fifo } from '../lib/fifo';

/** Past this many queued bytes new messages are dropped, as libzmq drops past its high-water
 *  mark: subscribers notice the gap from the next heartbeat and resynchronise. */
export const DEFAULT_MAX_QUEUED_BYTES = 64 * 1024 * 1024;

export class SendQueue {
  private readonly items = new Fifo<Buffer[]>();
  private draining = false;
  private bytes = 0;
  /** Messages libzmq refused (EAGAIN with a zero send timeout, or a closed socket). */
  refused = 0;
  /** Messages dropped because the queue held more than maxBytes. */
  dropped = 0;
  /** The most messages ever waiting (zeromq.js sends at most 512 per event-loop turn). */
  peak = 0;
  private idle: Array<() => void> = [];

  constructor(
    private readonly socket: Pick<Socket, 'closed'> & { send(msg: Buffer[]): Promise<void> },
    private readonly maxBytes = DEFAULT_MAX_QUEUED_BYTES,
  ) {}

  push(frames: Buffer[]): void {
    const size = frames.reduce((n, f) => n + f.length, 0);
    if (this.bytes + size > this.maxBytes && this.pending > 0) {
      this.dropped++;
      return;
    }
    this.bytes += size;
    this.items.push(frames);
    if (this.pending > this.peak) this.peak = this.pending;
    if (!this.draining) void this.drain();
  }

  /** Resolves when everything queued so far has been handed to libzmq. */
  drained(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  get pending(): number {
    return this.items.length;
  }

  private async drain(): Promise<void> {
    this.draining = true;
    try {
      for (let frames = this.items.shift(); frames; frames = this.items.shift()) {
        for (const f of frames) this.bytes -= f.length;
        if (this.socket.closed) {
          this.refused += this.pending + 1;
          this.items.clear();
          this.bytes = 0;
          break;
        }
        try {
          await this.socket.send(frames);
        } catch {
          this.refused++;
        }
      }
    } finally {
      this.draining = false;
      const waiters = this.idle;
      this.idle = [];
      for (const w of waiters) w();
    }
  }
}

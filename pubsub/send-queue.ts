// zeromq.js allows one send in flight per socket; this queues the rest in order.
// PUB and ROUTER never block (they drop past the high-water mark, which the bus
// detects by sequence numbers), so the queue drains as fast as libzmq accepts.
import type { Socket } from 'zeromq';

export class SendQueue {
  private items: Buffer[][] = [];
  private head = 0;
  private draining = false;
  /** Messages libzmq refused (EAGAIN with a zero send timeout, or a closed socket). */
  refused = 0;

  constructor(private readonly socket: Pick<Socket, 'closed'> & { send(msg: Buffer[]): Promise<void> }) {}

  push(frames: Buffer[]): void {
    this.items.push(frames);
    if (!this.draining) void this.drain();
  }

  get pending(): number {
    return this.items.length - this.head;
  }

  private async drain(): Promise<void> {
    this.draining = true;
    try {
      while (this.head < this.items.length) {
        const frames = this.items[this.head++] as Buffer[];
        if (this.head > 1024 && this.head * 2 > this.items.length) {
          this.items = this.items.slice(this.head);
          this.head = 0;
        }
        if (this.socket.closed) {
          this.refused += this.pending + 1;
          this.items = [];
          this.head = 0;
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
    }
  }
}

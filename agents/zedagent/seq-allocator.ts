// Sequence numbers for what the device sends, growing across restarts without a
// disk write per message: blocks of numbers are reserved on disk, and a restart
// starts after the last reserved block. A clock is never trusted for this
// (a device without an RTC may boot in 1970).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomicSync } from '../../lib/atomic-file';

const BLOCK = 10_000;

export class SeqAllocator {
  private next: number;
  private limit: number;

  constructor(private readonly file: string) {
    let reserved = 0;
    try {
      reserved = Number(fs.readFileSync(file, 'utf8').trim()) || 0;
    } catch { /* first start */ }
    this.next = reserved;
    this.limit = reserved;
  }

  static at(persistDir: string): SeqAllocator {
    return new SeqAllocator(path.join(persistDir, 'status', 'zedagent', 'seq'));
  }

  take(): number {
    if (this.next >= this.limit) this.reserve();
    return this.next++;
  }

  private reserve(): void {
    this.limit = this.next + BLOCK;
    fs.mkdirSync(path.dirname(this.file), { recursive: true });
    writeFileAtomicSync(this.file, `${this.limit}\n`);
  }
}

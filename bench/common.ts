// What the benchmark processes share: the test collection, the payloads, the
// parent<->child protocol, the publishing driver and the subscriber's tally.
import { Type, type Static } from '@sinclair/typebox';
import { PerformanceObserver } from 'node:perf_hooks';
import { setImmediate as yieldLoop } from 'node:timers/promises';
import { defineCollection, makeCatalog } from '../pubsub/catalog';

export const OWNER = 'benchpub';

/** The median (the mean of the middle two for an even count). */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? (s[(s.length - 1) / 2] as number) : ((s[s.length / 2 - 1] as number) + (s[s.length / 2] as number)) / 2;
}

/** Milliseconds since a process.hrtime.bigint() reading. */
export const msSince = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1e6;

// Shaped like a real status record (a list of sub-objects) rather than one long
// string, so schema checks, freezing and equality walks cost what they would in use.
// The changing fields come last: equality checks have to walk the whole value.
export const BenchItem = defineCollection({
  type: 'BenchItem',
  owner: OWNER,
  description: 'benchmark payload',
  schema: Type.Object({
    key: Type.String(),
    note: Type.String(),
    items: Type.Array(Type.Object({ name: Type.String(), value: Type.Number(), ok: Type.Boolean() })),
    i: Type.Number(),
    t: Type.String(),
  }),
  keyOf: (v) => v.key,
  maxValueBytes: 32 * 1024,
});
export const CATALOG = makeCatalog([BenchItem]);
export type Item = Static<typeof BenchItem.schema>;

export const keyName = (x: number): string => 'k' + String(x).padStart(4, '0');
/** hrtime as fixed-width text so every value of a run has the same size. */
export const stamp = (): string => process.hrtime.bigint().toString().padStart(20, '0');

interface Shape { items: Item['items']; note: string }
const shapes = new Map<number, Shape>();

/** Items and padding that make a value about `size` bytes of JSON. */
export function shapeFor(size: number): Shape {
  let shape = shapes.get(size);
  if (shape) return shape;
  const item = (n: number) => ({ name: `sensor-${String(n).padStart(4, '0')}`, value: n * 1.5, ok: n % 2 === 0 });
  const len = (items: Item['items'], note: string) =>
    JSON.stringify({ key: keyName(0), note, items, i: 1_000_000, t: stamp() }).length;
  const items: Item['items'] = [];
  while (len([...items, item(items.length)], '') <= size) items.push(item(items.length));
  shape = { items, note: 'x'.repeat(Math.max(0, size - len(items, ''))) };
  shapes.set(size, shape);
  return shape;
}

export function makeValue(size: number, x: number, i: number): Item {
  const { items, note } = shapeFor(size);
  return { key: keyName(x), note, items, i, t: stamp() };
}

// Protocol. Children are forked with 'advanced' serialization, so bigints pass.
export interface RunCmd {
  type: 'run';
  kind: 'burst' | 'paced';
  n: number;
  k: number;
  size: number;
  /** Value `i` of update j is base + j; each run has its own base, so every value is new. */
  base: number;
  /** Updates per second when paced. */
  rate: number;
  /** Latency samples from the first `warm` updates are not counted. */
  warm: number;
  timeoutMs: number;
}
export interface SentMsg {
  type: 'sent'; t0: bigint; t1: bigint; sent: number; suppressed: number; rss: { now: number; peak: number }; gc: GcStats;
  /** Most messages seen waiting in the bus endpoint's send queue (bus only). */
  maxBacklog?: number;
}
export interface LatStats { count: number; p50: number; p99: number; max: number }
export interface DoneMsg {
  type: 'done';
  complete: boolean;
  missing: number;
  tEnd: bigint;
  /** create/modify handler calls (bus) or messages parsed (raw) during the run. */
  applied: number;
  resyncs: number;
  gaps: number;
  reasons: Record<string, number>;
  lat?: LatStats;
  rss: { now: number; peak: number };
  gc: GcStats;
}
export type ChildMsg = { type: 'ready' } | { type: 'armed' } | SentMsg | DoneMsg;
export type ParentMsg = RunCmd | { type: 'exit' };

export function send(msg: ChildMsg): void {
  process.send?.(msg);
}

// Below zeromq.js's 512 synchronous sends per event-loop turn: bigger bursts pile
// up in the bus's SendQueue (unbounded), which would measure our batching, not the bus.
const CHUNK = 256;

/**
 * Publishes cmd.n updates over cmd.k keys: as fast as possible (yielding to the
 * event loop every CHUNK so sockets and timers run), or paced at cmd.rate.
 */
export async function drive(cmd: RunCmd, emit: (key: string, v: Item) => unknown): Promise<SentMsg> {
  let suppressed = 0;
  // Inline rather than an async helper: a promise per update would tax the bus's synchronous publish().
  const emitOne = (j: number): unknown => emit(keyName(j % cmd.k), makeValue(cmd.size, j % cmd.k, cmd.base + j));
  resetGc();
  const t0 = process.hrtime.bigint();
  const deadline = Date.now() + cmd.timeoutMs;
  let j = 0;
  if (cmd.kind === 'burst') {
    while (j < cmd.n && Date.now() < deadline) {
      const end = Math.min(cmd.n, j + CHUNK);
      for (; j < end; j++) {
        const r = emitOne(j);
        if (r === false) suppressed++;
        else if (r instanceof Promise) await r;
      }
      await yieldLoop();
    }
  } else {
    // setTimeout(1) ticks come every ~1.1 ms; send whatever the schedule says is due.
    const start = performance.now();
    while (j < cmd.n && Date.now() < deadline) {
      const due = Math.min(cmd.n, Math.floor(((performance.now() - start) * cmd.rate) / 1000) + 1);
      for (; j < due; j++) {
        const r = emitOne(j);
        if (r === false) suppressed++;
        else if (r instanceof Promise) await r;
      }
      await new Promise((r) => setTimeout(r, 1));
    }
  }
  return { type: 'sent', t0, t1: process.hrtime.bigint(), sent: j, suppressed, rss: rssMb(), gc: gcStats() };
}

/** The subscriber's side of a run: when has every key reached its final value. */
export class Tracker {
  applied = 0;
  tEnd = 0n;
  done = false;
  private readonly final: Int32Array;
  private readonly reached: Uint8Array;
  private remaining: number;
  private readonly samples: number[] = [];

  constructor(readonly cmd: RunCmd, private readonly onDone: () => void) {
    const { n, k } = cmd;
    this.final = new Int32Array(k).fill(-1);
    this.reached = new Uint8Array(k);
    for (let x = 0; x < Math.min(k, n); x++) this.final[x] = x + k * Math.floor((n - 1 - x) / k);
    this.remaining = Math.min(k, n);
  }

  get missing(): number { return this.remaining; }

  onValue(v: Item): void {
    const now = process.hrtime.bigint();
    this.applied++;
    const j = v.i - this.cmd.base;
    if (j < 0 || j >= this.cmd.n) return; // left over from an earlier run
    if (this.cmd.kind === 'paced' && j >= this.cmd.warm && this.samples.length < 1e6) {
      this.samples.push(Number(now - BigInt(v.t)));
    }
    const x = j % this.cmd.k;
    if (j === this.final[x] && !this.reached[x]) {
      this.reached[x] = 1;
      if (--this.remaining === 0 && !this.done) {
        this.done = true;
        this.tEnd = now;
        this.onDone();
      }
    }
  }

  latency(): LatStats | undefined {
    if (this.cmd.kind !== 'paced' || this.samples.length === 0) return undefined;
    const s = Float64Array.from(this.samples).sort();
    const q = (p: number) => (s[Math.min(s.length - 1, Math.floor(p * s.length))] as number) / 1e6;
    return { count: s.length, p50: q(0.5), p99: q(0.99), max: (s[s.length - 1] as number) / 1e6 };
  }
}

/** Runs `handler` for each command from the parent; 'exit' ends the process after `close`. */
export function serve(handler: (cmd: RunCmd) => void | Promise<void>, close: () => unknown): void {
  const quit = async (code: number): Promise<never> => {
    const force = setTimeout(() => process.exit(code), 2000);
    force.unref();
    try { await close(); } catch { /* exiting anyway */ }
    process.exit(code);
  };
  process.on('message', (m: ParentMsg) => {
    if (m.type === 'exit') void quit(0);
    else Promise.resolve(handler(m)).catch((err) => {
      process.stderr.write(`run failed: ${(err as Error).stack}\n`);
      void quit(1);
    });
  });
  process.on('disconnect', () => void quit(0)); // the parent died: do not linger
}

/** RSS now and the process's lifetime peak (which earlier runs in the same process may have set). */
export const rssMb = (): { now: number; peak: number } => ({ now: process.memoryUsage.rss() / 2 ** 20, peak: process.resourceUsage().maxRSS / 1024 });

/** Resync reasons without their numbers, so they can be counted. */
export const reasonKey = (r: unknown): string => String(r).replace(/\d+/g, 'N');

// Garbage-collection pauses during a run: they explain latency tails.
export interface GcStats { count: number; totalMs: number; maxMs: number }
let gcAcc: GcStats = { count: 0, totalMs: 0, maxMs: 0 };
export const resetGc = (): void => { gcAcc = { count: 0, totalMs: 0, maxMs: 0 }; };
export const gcStats = (): GcStats => ({ ...gcAcc });
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    gcAcc.count++;
    gcAcc.totalMs += e.duration;
    gcAcc.maxMs = Math.max(gcAcc.maxMs, e.duration);
  }
}).observe({ entryTypes: ['gc'] });

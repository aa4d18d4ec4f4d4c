// Figures of the fleet run: percentiles, the lag trend, and the end-to-end delay
// of each message as the controller itself recorded it (its events log keeps the
// receive time beside the body, whose time the device set when it sent it).
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface Percentiles { count: number; p50: number; p99: number; max: number }

export function percentiles(xs: number[]): Percentiles | undefined {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number): number => s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
  return { count: s.length, p50: at(0.5), p99: at(0.99), max: s[s.length - 1]! };
}

/** Least-squares slope of y over x (per unit of x); 0 for fewer than two points. */
export function slope(points: Array<{ x: number; y: number }>): number {
  const n = points.length;
  if (n < 2) return 0;
  const mx = points.reduce((a, p) => a + p.x, 0) / n;
  const my = points.reduce((a, p) => a + p.y, 0) / n;
  const num = points.reduce((a, p) => a + (p.x - mx) * (p.y - my), 0);
  const den = points.reduce((a, p) => a + (p.x - mx) ** 2, 0);
  return den === 0 ? 0 : num / den;
}

export interface Delays { info: number[]; metrics: number[]; linesRead: number }

/**
 * Receive time minus send time (ms, both from this machine's clock, millisecond ISO
 * text) of every info and metrics message sent within [fromMs, toMs], from the
 * controller's events/<uuid>.ndjson files (and their rotated .1).
 */
export function delaysFromEvents(stateDir: string, fromMs: number, toMs: number): Delays {
  const out: Delays = { info: [], metrics: [], linesRead: 0 };
  const dir = path.join(stateDir, 'events');
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of names) {
    if (!name.endsWith('.ndjson') && !name.endsWith('.ndjson.1')) continue;
    for (const line of fs.readFileSync(path.join(dir, name), 'utf8').split('\n')) {
      if (!line) continue;
      out.linesRead++;
      const ev = JSON.parse(line) as { receivedAt: string; type: string; body: { time?: string } };
      if (ev.type !== 'info' && ev.type !== 'metrics') continue;
      const sent = Date.parse(ev.body.time ?? '');
      if (!(sent >= fromMs && sent <= toMs)) continue;
      out[ev.type].push(Date.parse(ev.receivedAt) - sent);
    }
  }
  return out;
}

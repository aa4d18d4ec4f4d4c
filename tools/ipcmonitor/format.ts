// How ipcmonitor prints: a readable table for people, JSON lines for scripts.
import type { OwnerReport } from '../../pubsub/discovery';

export interface WatchEvent {
  time: string;
  event: 'create' | 'modify' | 'delete' | 'synchronized' | 'restarted';
  owner: string;
  type: string;
  key?: string;
  value?: unknown;
  old?: unknown;
  counter?: number;
}

export function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ').trimEnd()).join('\n') + '\n';
}

export function listTable(reports: OwnerReport[]): string {
  const rows = [['OWNER', 'PID', 'TYPE', 'KEYS', 'RESTARTED', 'SEQ', 'PERSISTENT']];
  for (const r of reports) {
    if (!r.info) {
      rows.push([r.owner, r.pid ? String(r.pid) : '-', `(${r.error ?? 'unknown'})`, '', '', '', '']);
      continue;
    }
    if (r.info.pubs.length === 0) rows.push([r.owner, String(r.info.pid), '(no publications yet)', '', '', '', '']);
    for (const p of r.info.pubs) {
      rows.push([r.owner, String(r.info.pid), p.type, String(p.keys), String(p.restarted), String(p.seq), p.persistent ? 'yes' : 'no']);
    }
  }
  return table(rows);
}

export function listJson(reports: OwnerReport[]): string {
  const lines: string[] = [];
  for (const r of reports) {
    if (!r.info) {
      lines.push(JSON.stringify({ owner: r.owner, pid: r.pid ?? null, error: r.error }));
      continue;
    }
    for (const p of r.info.pubs) lines.push(JSON.stringify({ owner: r.owner, pid: r.info.pid, ...p }));
  }
  return lines.map((l) => l + '\n').join('');
}

export function eventLine(e: WatchEvent, json: boolean): string {
  if (json) return JSON.stringify(e) + '\n';
  const what = `${e.owner}/${e.type}`;
  const time = e.time.slice(11, 23);
  switch (e.event) {
    case 'synchronized':
      return `${time}  SYNCED     ${what}  (initial state complete)\n`;
    case 'restarted':
      return `${time}  RESTARTED  ${what}  counter ${e.counter}\n`;
    case 'delete':
      return `${time}  DELETE     ${what}  ${e.key}\n`;
    default:
      return `${time}  ${e.event.toUpperCase().padEnd(9)}  ${what}  ${e.key}  ${JSON.stringify(e.value)}\n`;
  }
}

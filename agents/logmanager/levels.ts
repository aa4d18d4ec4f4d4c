// Which lines go to the controller, and what a line looks like on its way there:
// the remote levels from the config items, and the conversion of an agent's
// Logger line or an app's output line into the LogLine the controller stores. Pure.
import type { LogLine } from '../../api/logs';
import { LEVEL_RANK, type Level } from '../../lib/log';
import { remoteRank, type RelayLevels, type RemoteLevel } from '../../lib/log-relay';
import { configItem, PATTERN_ITEMS, remoteLogLevel } from '../../pubsub/collections/config-items';

type Items = Readonly<Record<string, string>> | undefined;

/** A message longer than this is cut (a batch must stay under its compressed limit whatever one line holds). */
export const MAX_MSG_CHARS = 16 * 1024;
/** Structured fields beyond this (as JSON) are replaced by a note of their size. */
export const MAX_FIELDS_CHARS = 32 * 1024;

const AGENT_ITEM = PATTERN_ITEMS[0].pattern;

/** The levels the relays apply per agent: debug.default.remote.loglevel, and agent.<name>.remote.loglevel. */
export function agentLevels(items: Items): RelayLevels {
  const sources: Record<string, RemoteLevel> = {};
  for (const key of Object.keys(items ?? {})) {
    const m = AGENT_ITEM.exec(key);
    if (m?.[1]) sources[m[1]] = remoteLogLevel(items, { agent: m[1] });
  }
  return { default: configItem(items, 'debug.default.remote.loglevel') as RemoteLevel, sources };
}

/** The level an app's output must reach: app.<name>.remote.loglevel, else debug.app.remote.loglevel. */
export function appLevel(items: Items, app: string): RemoteLevel {
  return remoteLogLevel(items, { app });
}

export function sourceLevel(levels: RelayLevels, source: string): RemoteLevel {
  return levels.sources[source] ?? levels.default;
}

export function passes(level: Level, threshold: RemoteLevel): boolean {
  return LEVEL_RANK[level] >= remoteRank(threshold);
}

function isLevel(v: unknown): v is Level {
  return typeof v === 'string' && Object.prototype.hasOwnProperty.call(LEVEL_RANK, v);
}

/** What a cut message ends with: how long it was. */
export function cutNote(chars: number): string {
  return `… [cut: ${chars} characters]`;
}

function cut(s: string): string {
  return s.length > MAX_MSG_CHARS ? `${s.slice(0, MAX_MSG_CHARS)}${cutNote(s.length)}` : s;
}

/** An agent's line, ready for a batch: its LogLine as JSON, and what the level filter needs. */
export interface AgentLine { json: string; time: string; source: string; level: Level }

/**
 * A Logger line (lib/log.ts) as a LogLine: time, source, level and msg kept, every other
 * field (pid included) under `fields`. A line that is not one is kept too, whole, as the
 * message of a warning from `fallbackSource` that names what was wrong with it.
 */
export function agentLine(text: string, fallbackSource: string, now: () => string): AgentLine {
  let obj: Record<string, unknown> | undefined;
  try {
    const v: unknown = JSON.parse(text);
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) obj = v as Record<string, unknown>;
  } catch { /* reported below */ }
  const problem = !obj ? 'not a JSON object'
    : typeof obj.time !== 'string' || obj.time.length > 64 ? 'field time is not a time (a string of at most 64 characters)'
    : !isLevel(obj.level) ? `field level is not one of ${Object.keys(LEVEL_RANK).join(', ')}`
    : typeof obj.source !== 'string' || obj.source.length < 1 || obj.source.length > 64 ? 'field source is not a name of 1 to 64 characters'
    : typeof obj.msg !== 'string' ? 'field msg is not a string'
    : undefined;
  if (problem || !obj) {
    const line: LogLine = { time: now(), source: fallbackSource, level: 'warn', msg: cut(text), fields: { problem: `a relayed line that is not a log line: ${problem}` } };
    return { json: JSON.stringify(line), time: line.time, source: line.source, level: 'warn' };
  }
  const { time, level, source, msg, ...rest } = obj as { time: string; level: Level; source: string; msg: string };
  const line: LogLine = { time, source, level, msg: cut(msg) };
  if (Object.keys(rest).length) {
    const fields = JSON.stringify(rest);
    line.fields = fields.length > MAX_FIELDS_CHARS ? { cut: `fields of ${fields.length} characters left out` } : rest;
  }
  return { json: JSON.stringify(line), time, source, level };
}

/** An app's output line: stdout is info, stderr warn. Built as text (the hot path of a burst);
 *  the same JSON as JSON.stringify of the LogLine, fields in its order. `note`: the reader cut
 *  the line already (docker-lines.ts) and says how; it follows msg as it is. */
export function appLine(app: { name: string; appId: string }, stream: 'stdout' | 'stderr', time: string, msg: string, note?: string): { json: string; level: Level } {
  const level: Level = stream === 'stderr' ? 'warn' : 'info';
  const text = note === undefined ? cut(msg) : msg + note;
  const json = `{"time":${JSON.stringify(time)},"source":"app","level":"${level}","msg":${JSON.stringify(text)},` +
    `"app":${JSON.stringify(app.name)},"appId":${JSON.stringify(app.appId)},"stream":"${stream}"}`;
  return { json, level };
}

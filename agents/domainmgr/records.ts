// What domainmgr remembers about each app between passes: the exits it has
// already accounted for, the crash loop count, and the last failed action.
// Pure updates; the loop keeps one AppRecord per app id in memory.
import { backoffDelay } from '../../lib/backoff';
import type { DomainConfig } from '../../pubsub/collections/apps';

/** A container as the engine shows it (list + inspect). */
export interface ObservedContainer {
  id: string;
  name: string;
  /** org.zedbox.app; absent on an owned container that names no app. */
  appId?: string;
  specHash?: string;
  /** Docker's State.Status: created, running, paused, restarting, removing, exited, dead. */
  status: string;
  running: boolean;
  exitCode: number;
  startedAt: string;
  finishedAt: string;
}

export interface Failure {
  action: string;
  message: string;
  count: number;
  firstAt: number;
  retryAt: number;
}

export interface AppRecord {
  /** The config the crash record is about; a new specHash or activate false→true resets it. */
  specHash: string;
  activate: boolean;
  /** The last exit already handled (a noted crash, or a stop of ours): `${id}@${finishedAt}`. */
  exitKey?: string;
  /** Times (ms) of crashes within the window. */
  crashTimes: number[];
  restarts: number;
  /** When the last noted crash may be restarted; absent when no restart is pending. */
  restartDue?: number;
  broken: boolean;
  lastExitCode?: number;
  lastExitAt?: string;
  lastLogLines?: string[];
  failure?: Failure;
}

export interface Limits {
  crashLimit: number;
  crashWindowMs: number;
  restartBackoffMaxMs: number;
  /** Longest wait before retrying a failed create/start. */
  retryMaxMs: number;
}

const NEVER = '0001-01-01T00:00:00Z';

/** Identifies one exit of one container; undefined for a container that never ran. */
export function exitKeyOf(c: ObservedContainer): string | undefined {
  if (c.running || !c.finishedAt || c.finishedAt.startsWith('0001-')) return undefined;
  return `${c.id}@${c.finishedAt}`;
}

export function hasRun(c: ObservedContainer): boolean {
  return !!c.startedAt && c.startedAt !== NEVER && !c.startedAt.startsWith('0001-');
}

/** The record for a config, reset when the spec changes or the app is activated again. */
export function syncRecord(rec: AppRecord | undefined, cfg: DomainConfig, c: ObservedContainer | undefined): AppRecord {
  const fresh = (exitKey?: string): AppRecord => ({ specHash: cfg.specHash, activate: cfg.activate, exitKey, crashTimes: [], restarts: 0, broken: false });
  if (!rec) return fresh(cfg.activate ? undefined : c && exitKeyOf(c));
  if (rec.specHash !== cfg.specHash) return fresh(rec.exitKey);
  if (!rec.activate && cfg.activate) {
    // Whatever exit the container shows now happened while it was meant to be stopped: not a crash.
    return { ...fresh(c ? exitKeyOf(c) ?? rec.exitKey : rec.exitKey), restarts: rec.restarts };
  }
  if (rec.activate !== cfg.activate) return { ...rec, activate: cfg.activate, restartDue: undefined, failure: undefined };
  return rec;
}

export function crashesInWindow(rec: AppRecord, now: number, limits: Limits): number[] {
  return rec.crashTimes.filter((t) => now - t < limits.crashWindowMs);
}

/** Delay before restarting after the n-th crash in the window: 1 s doubling to the cap. */
export function restartDelay(n: number, limits: Limits): number {
  return backoffDelay({ minMs: 1000, maxMs: limits.restartBackoffMaxMs, jitter: 0 }, n);
}

export interface ExitFacts {
  exitKey: string;
  exitCode: number;
  finishedAt: string;
  logLines: string[];
}

/** Accounts for one crash: counts it, and either schedules the restart or leaves the app broken. */
export function noteCrash(rec: AppRecord, exit: ExitFacts, now: number, limits: Limits, broken: boolean): AppRecord {
  const crashTimes = [...crashesInWindow(rec, now, limits), now];
  return {
    ...rec,
    exitKey: exit.exitKey,
    crashTimes,
    broken,
    restartDue: broken ? undefined : now + restartDelay(crashTimes.length, limits),
    lastExitCode: exit.exitCode,
    lastExitAt: exit.finishedAt,
    lastLogLines: exit.logLines,
  };
}

export function noteFailure(rec: AppRecord, action: string, err: unknown, now: number, limits: Limits): AppRecord {
  const message = err instanceof Error ? err.message : String(err);
  const count = (rec.failure?.action === action ? rec.failure.count : 0) + 1;
  const firstAt = rec.failure?.action === action ? rec.failure.firstAt : now;
  const delay = backoffDelay({ minMs: 1000, maxMs: limits.retryMaxMs, jitter: 0 }, count);
  return { ...rec, failure: { action, message, count, firstAt, retryAt: now + delay } };
}

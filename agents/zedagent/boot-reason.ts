// Why zedbox is starting, told from a record of the previous run: the machine's
// boot id (new on every kernel boot) and whether that run stopped cleanly, and
// why. The record also counts starts (the device info's restartCounter).
// bootReason, startRecord and stopRecord are pure; the rest reads and writes
// <persist>/status/zedagent/last-run.json (atomically).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { BootReasonSchema, type BootReason } from '../../api/info';
import { writeJsonAtomicSync } from '../../lib/atomic-file';

/** Why a run stopped: for a controller command, or told to by someone else (SIGTERM from the OS, an operator). */
export const STOP_REASONS = ['reboot-command', 'shutdown-command', 'stop'] as const;
export type StopReason = (typeof STOP_REASONS)[number];

export const LastRunSchema = Type.Object(
  {
    /** /proc/sys/kernel/random/boot_id when that run started. */
    machineBootId: Type.String({ minLength: 1 }),
    state: Type.Union([Type.Literal('running'), Type.Literal('stopped')]),
    startedAt: Type.String(),
    /** Starts on this device, that run included. */
    restartCounter: Type.Integer({ minimum: 0 }),
    /** Why that run started. */
    bootReason: Type.Optional(BootReasonSchema),
    zedboxVersion: Type.Optional(Type.String()),
    stoppedAt: Type.Optional(Type.String()),
    stopReason: Type.Optional(Type.Union(STOP_REASONS.map((r) => Type.Literal(r)))),
  },
  { additionalProperties: false },
);
export type LastRun = Static<typeof LastRunSchema>;

/** The reason table (see BOOT_REASONS in api/info.ts). */
export function bootReason(prev: LastRun | undefined, now: { machineBootId: string }): BootReason {
  if (!prev) return 'first-boot';
  const sameBoot = prev.machineBootId === now.machineBootId;
  if (prev.state === 'running') return sameBoot ? 'zedbox-crash' : 'power-or-crash';
  // A command that did not take the machine down (same boot) was only a zedbox restart.
  if (sameBoot) return 'zedbox-restart';
  if (prev.stopReason === 'reboot-command') return 'reboot-command';
  if (prev.stopReason === 'shutdown-command') return 'shutdown-command';
  return 'machine-reboot';
}

/** The record of the run starting now. */
export function startRecord(prev: LastRun | undefined, now: { machineBootId: string; startedAt: string; zedboxVersion?: string }): LastRun {
  return {
    machineBootId: now.machineBootId,
    state: 'running',
    startedAt: now.startedAt,
    restartCounter: (prev?.restartCounter ?? 0) + 1,
    bootReason: bootReason(prev, now),
    ...(now.zedboxVersion !== undefined ? { zedboxVersion: now.zedboxVersion } : {}),
  };
}

export function stopRecord(run: LastRun, reason: StopReason, stoppedAt: string): LastRun {
  return { ...run, state: 'stopped', stoppedAt, stopReason: reason };
}

// ---- the record on disk ----

export const BOOT_ID_FILE = '/proc/sys/kernel/random/boot_id';

export function lastRunFile(persistDir: string): string {
  return path.join(persistDir, 'status', 'zedagent', 'last-run.json');
}

export function readMachineBootId(file = BOOT_ID_FILE): string {
  return fs.readFileSync(file, 'utf8').trim();
}

/**
 * The previous run's record. undefined when there is none, and also when it is unreadable
 * (written atomically, so only damage or a hand edit does that): the start then counts as a first boot.
 */
export function readLastRun(persistDir: string): LastRun | undefined {
  let text: string;
  try {
    text = fs.readFileSync(lastRunFile(persistDir), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const value: unknown = JSON.parse(text);
    return Value.Check(LastRunSchema, value) ? value : undefined;
  } catch {
    return undefined;
  }
}

export function writeRunning(persistDir: string, info: LastRun): void {
  // A running record carries no stop: JSON.stringify drops the undefined fields.
  const running: LastRun = { ...info, state: 'running', stoppedAt: undefined, stopReason: undefined };
  writeJsonAtomicSync(lastRunFile(persistDir), running);
}

/** Marks the current run stopped, with why; the record as written, or undefined when there was none to mark. */
export function writeStopped(persistDir: string, reason: StopReason, stoppedAt = new Date().toISOString()): LastRun | undefined {
  const run = readLastRun(persistDir);
  if (!run) return undefined;
  const stopped = stopRecord(run, reason, stoppedAt);
  writeJsonAtomicSync(lastRunFile(persistDir), stopped);
  return stopped;
}

/** At start: why we are starting, and the record of this run (already written). */
export function startRun(
  persistDir: string,
  opts: { startedAt?: string; zedboxVersion?: string; machineBootId?: string } = {},
): { reason: BootReason; record: LastRun; previous: LastRun | undefined } {
  const previous = readLastRun(persistDir);
  const record = startRecord(previous, {
    machineBootId: opts.machineBootId ?? readMachineBootId(),
    startedAt: opts.startedAt ?? new Date().toISOString(),
    ...(opts.zedboxVersion !== undefined ? { zedboxVersion: opts.zedboxVersion } : {}),
  });
  writeRunning(persistDir, record);
  return { reason: record.bootReason!, record, previous };
}

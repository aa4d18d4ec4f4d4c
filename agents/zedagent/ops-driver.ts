// Carrying out a reboot or shutdown counter: record it first (so it acts once
// even when the command takes the machine down at once), then run the command
// the device was configured with. No command configured is an error reported
// in device info, never a silent no-op.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeJsonAtomicSync } from '../../lib/atomic-file';
import type { DeviceOp, OpsRecord } from './device-ops';

export function opsRecordPath(persistDir: string): string {
  return path.join(persistDir, 'status', 'zedagent', 'device-ops.json');
}

export function readOpsRecord(persistDir: string): OpsRecord {
  try {
    const v = JSON.parse(fs.readFileSync(opsRecordPath(persistDir), 'utf8')) as OpsRecord;
    return { ...(typeof v.reboot === 'number' ? { reboot: v.reboot } : {}), ...(typeof v.shutdown === 'number' ? { shutdown: v.shutdown } : {}) };
  } catch {
    return {};
  }
}

export function writeOpsRecord(persistDir: string, rec: OpsRecord): void {
  writeJsonAtomicSync(opsRecordPath(persistDir), rec);
}

/** The commands come from the environment (device-steps.sh sets them on a real device). */
export function opsCommand(op: DeviceOp, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const v = op === 'reboot' ? env.ZEDBOX_REBOOT_COMMAND : env.ZEDBOX_SHUTDOWN_COMMAND;
  return v && v.trim() ? v : undefined;
}

export interface OpsResult { op: DeviceOp; command?: string; exitCode?: number; error?: string; at: string }

/** Runs the command through sh, bounded to 60 s; resolves with what happened. */
export function runOpsCommand(op: DeviceOp, command: string | undefined): Promise<OpsResult> {
  const at = new Date().toISOString();
  if (!command) {
    return Promise.resolve({ op, at, error: `no ${op} command configured (ZEDBOX_${op.toUpperCase()}_COMMAND)` });
  }
  return new Promise((resolve) => {
    const child = spawn('/bin/sh', ['-c', command], { stdio: 'ignore', detached: false, timeout: 60_000 });
    child.on('error', (err) => resolve({ op, command, at, error: err.message }));
    child.on('exit', (code, signal) => resolve({
      op, command, at, exitCode: code ?? -1, ...(code === 0 ? {} : { error: `${op} command exited ${code ?? signal}` }),
    }));
  });
}

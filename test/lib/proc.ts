// Spawning zedbox processes in tests and waiting for what they print.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export const ROOT = path.resolve(__dirname, '../..');
export const ZEDBOX = path.join(ROOT, 'dist/zedbox');
export const BIN = (name: string): string => path.join(ROOT, 'dist/bin', name);

export interface Proc {
  child: ChildProcess;
  lines: string[];
  /** Resolves with the first line (already seen or future) matching `pred`. */
  waitFor(pred: (line: string) => boolean, what: string, timeoutMs?: number): Promise<string>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function start(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): Proc {
  const child = spawn(cmd, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const waiters = new Set<() => void>();
  const onData = (stream: NodeJS.ReadableStream): void => {
    let buf = '';
    stream.on('data', (chunk: Buffer) => {
      buf += chunk.toString();
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        lines.push(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
      for (const w of waiters) w();
    });
  };
  onData(child.stdout as NodeJS.ReadableStream);
  onData(child.stderr as NodeJS.ReadableStream);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('exit', (code, signal) => {
      for (const w of waiters) w();
      resolve({ code, signal });
    });
  });
  const waitFor = (pred: (line: string) => boolean, what: string, timeoutMs = 15_000): Promise<string> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        const hit = lines.find(pred);
        if (hit !== undefined) {
          cleanup();
          resolve(hit);
        } else if (child.exitCode !== null || child.signalCode !== null) {
          cleanup();
          reject(new Error(`process exited before ${what}; output:\n${lines.slice(-30).join('\n')}`));
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last output:\n${lines.slice(-30).join('\n')}`));
      }, timeoutMs);
      const cleanup = (): void => {
        clearTimeout(timer);
        waiters.delete(check);
      };
      waiters.add(check);
      check();
    });
  return { child, lines, waitFor, exited };
}

/** Runs a command to completion. */
export async function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; out: string; err: string }> {
  const p = spawn(cmd, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  p.stdout.on('data', (c: Buffer) => (out += c.toString()));
  p.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const code = await new Promise<number | null>((resolve) => p.on('exit', (c) => resolve(c)));
  return { code, out, err };
}

/** Short temporary directories (ipc socket paths are limited to 107 bytes). */
export function tempDirs(): { root: string; run: string; persist: string; config: string; flags: string[]; cleanup(): void } {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'zb-'));
  const dirs = { run: path.join(root, 'run'), persist: path.join(root, 'persist'), config: path.join(root, 'config') };
  return {
    root,
    ...dirs,
    flags: ['--run-dir', dirs.run, '--persist-dir', dirs.persist, '--config-dir', dirs.config],
    cleanup: () => fs.rmSync(root, { recursive: true, force: true }),
  };
}

export function jsonLine(line: string): Record<string, unknown> | undefined {
  try {
    const v = JSON.parse(line) as unknown;
    return typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

export const msgIs = (msg: string) => (line: string): boolean => jsonLine(line)?.msg === msg;

// zedbox's exit: everything written to stdout and stderr reaches a reader on a
// pipe, however much is still queued in the process when the command is done.
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import t from 'tap';

const EXIT = path.resolve(__dirname, '../../zedbox/exit.ts');

/** Runs a child that writes `outBytes` to stdout and `errBytes` to stderr at once, then exits through `exit`. */
async function child(exit: string, outBytes: number, errBytes: number): Promise<{ code: number | null; out: number; err: number; last: string }> {
  const script = `const { exitWhenFlushed } = require(${JSON.stringify(EXIT)});
process.stdout.write('o'.repeat(${outBytes - 4}) + 'END\\n');
process.stderr.write('e'.repeat(${errBytes}));
${exit}`;
  const p = spawn(process.execPath, ['--import', 'tsx', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  let err = 0;
  p.stdout.on('data', (c: Buffer) => out.push(c));
  p.stderr.on('data', (c: Buffer) => (err += c.length));
  const code = await new Promise<number | null>((resolve) => p.on('close', (c) => resolve(c)));
  const all = Buffer.concat(out);
  return { code, out: all.length, err, last: all.subarray(-4).toString() };
}

t.test('a command\'s output larger than a pipe\'s buffer all reaches the reader, then the exit code', async (t) => {
  const r = await child('exitWhenFlushed(3);', 1 << 20, 256 * 1024);
  t.same(r, { code: 3, out: 1 << 20, err: 256 * 1024, last: 'END\n' }, 'every byte of stdout and stderr, and the code');
});

t.test('with nothing left to write it exits at once with the code', async (t) => {
  const r = await child('exitWhenFlushed(0);', 4, 0);
  t.same(r, { code: 0, out: 4, err: 0, last: 'END\n' });
});

/**
 * A child whose stdout reader has gone away (`| head` that has had enough) and whose stderr is
 * full (its reader slow): it writes to both, then `then` runs. The test reads stderr only once
 * the child's stdout reported EPIPE (told on fd 3), so an exit at that moment would show.
 */
async function closedReader(then: string): Promise<{ code: number | null; err: number }> {
  const script = `const fs = require('node:fs');
const { exitQuietlyOnClosedStdout, exitWhenFlushed } = require(${JSON.stringify(EXIT)});
process.stdout.on('error', () => fs.writeSync(3, 'epipe\\n'));
exitQuietlyOnClosedStdout();
process.stdin.once('data', () => {
  process.stderr.write('e'.repeat(256 * 1024));
  process.stdout.write('o'.repeat(1 << 20));
  ${then}
});
setInterval(() => undefined, 1000);`;
  const p = spawn(process.execPath, ['--import', 'tsx', '-e', script], { stdio: ['pipe', 'pipe', 'pipe', 'pipe'] });
  p.stdout.destroy();
  let err = 0;
  const readErr = (): void => { p.stderr.on('data', (c: Buffer) => (err += c.length)); };
  const fd3 = p.stdio[3] as NodeJS.ReadableStream;
  fd3.once('data', readErr);
  // A child that never writes to fd 3 still ends: its stderr is read when it closes fd 3.
  fd3.once('end', readErr);
  p.stdin.write('go\n');
  const code = await new Promise<number | null>((resolve) => p.on('close', (c) => resolve(c)));
  return { code, err };
}

t.test('a command whose reader closed the pipe exits with its own code, not 0, after writing stderr', async (t) => {
  t.same(await closedReader('exitWhenFlushed(3);'), { code: 3, err: 256 * 1024 }, 'the failure is not hidden');
  t.same(await closedReader('exitWhenFlushed(0);'), { code: 0, err: 256 * 1024 });
});

t.test('a closed pipe while the command still runs ends it quietly with 0 (`ipcmonitor | head`)', async (t) => {
  t.equal((await closedReader('')).code, 0);
});

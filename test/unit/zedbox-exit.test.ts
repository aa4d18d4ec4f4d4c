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

// Reading Docker's logs stream: frames split anywhere, stdout and stderr, lines
// Docker cut at 16 KiB joined again, and the cursor a resumed read starts from
// (entries already taken skipped, even several with the very same time).
import t from 'tap';
import { CursorGate, LogStreamParser, normTime, sinceOf, type OutputLine } from '../../agents/logmanager/docker-lines';

function frame(stream: 1 | 2, payload: string): Buffer {
  const body = Buffer.from(payload);
  const head = Buffer.alloc(8);
  head[0] = stream;
  head.writeUInt32BE(body.length, 4);
  return Buffer.concat([head, body]);
}

function read(gate: CursorGate, chunks: Buffer[], tty = false): OutputLine[] {
  gate.restart();
  const out: OutputLine[] = [];
  const p = new LogStreamParser(tty, gate);
  for (const c of chunks) p.push(c, (l) => out.push(l));
  return out;
}

const T = (n: number, frac = '000000001'): string => `2026-05-06T07:00:${String(n).padStart(2, '0')}.${frac}Z`;

t.test('normTime and sinceOf keep the nanoseconds', async (t) => {
  t.equal(normTime('2026-05-06T07:00:01.5Z'), '2026-05-06T07:00:01.500000000Z', 'Docker trims trailing zeros; we put them back');
  t.equal(normTime('2026-05-06T07:00:01Z'), '2026-05-06T07:00:01.000000000Z');
  t.equal(normTime('yesterday'), undefined);
  t.equal(sinceOf({ t: '2026-05-06T07:00:01.000000042Z', n: 1 }), `${Date.parse('2026-05-06T07:00:01Z') / 1000}.000000042`);
});

t.test('frames split at any byte give the same lines', async (t) => {
  const whole = Buffer.concat([frame(1, `${T(1)} one\n`), frame(2, `${T(2)} two\n`), frame(1, `${T(3)} three\r\n`)]);
  const want = [
    { stream: 'stdout', time: T(1), msg: 'one' },
    { stream: 'stderr', time: T(2), msg: 'two' },
    { stream: 'stdout', time: T(3), msg: 'three' },
  ];
  for (let cut = 1; cut < whole.length; cut += 3) {
    t.same(read(new CursorGate(), [whole.subarray(0, cut), whole.subarray(cut)]), want, `cut at ${cut}`);
  }
});

t.test('a line Docker cut in pieces is joined, with the time of its first piece', async (t) => {
  const chunks = [frame(1, `${T(1)} aaa`), frame(2, `${T(2)} err\n`), frame(1, `${T(3)} bbb`), frame(1, `${T(4)} ccc\n`)];
  t.same(read(new CursorGate(), chunks), [
    { stream: 'stderr', time: T(2), msg: 'err' },
    { stream: 'stdout', time: T(1), msg: 'aaabbbccc' },
  ]);
});

t.test('a TTY container\'s raw stream is read as stdout lines', async (t) => {
  t.same(read(new CursorGate(), [Buffer.from(`${T(1)} hello\n${T(2)} wo`), Buffer.from('rld\n')], true), [
    { stream: 'stdout', time: T(1), msg: 'hello' },
    { stream: 'stdout', time: T(2), msg: 'world' },
  ]);
});

t.test('a resumed read skips what was taken, even entries sharing one time', async (t) => {
  const gate = new CursorGate();
  // Three entries with the same nanosecond, then one later.
  const all = [frame(1, `${T(1)} a\n`), frame(1, `${T(1)} b\n`), frame(1, `${T(1)} c\n`), frame(1, `${T(2)} d\n`)];
  t.same(read(gate, all.slice(0, 2)).map((l) => l.msg), ['a', 'b'], 'the first read stops after b');
  t.same(gate.cursor, { t: normTime(T(1)), n: 2 });
  // Docker's since is inclusive: the next read starts again at a.
  t.same(read(gate, all).map((l) => l.msg), ['c', 'd'], 'nothing repeated, nothing lost');
  t.same(gate.cursor, { t: normTime(T(2)), n: 1 });
  t.same(read(gate, all.slice(3)).map((l) => l.msg), [], 'a read with nothing new');
});

t.test('a read cut in the middle of a long line takes the whole line again next time', async (t) => {
  const gate = new CursorGate();
  const all = [frame(1, `${T(1)} x\n`), frame(1, `${T(2)} lo`), frame(1, `${T(3)} ng\n`)];
  t.same(read(gate, all.slice(0, 2)).map((l) => l.msg), ['x'], 'the piece alone is not a line');
  t.same(gate.cursor, { t: normTime(T(1)), n: 1 }, 'the cursor stays before it');
  t.same(read(gate, all).map((l) => l.msg), ['long']);
});

t.test('a gate from a saved cursor (a restart of logmanager)', async (t) => {
  const gate = new CursorGate({ t: normTime(T(5)) as string, n: 1 });
  const lines = read(gate, [frame(1, `${T(5)} seen\n`), frame(1, `${T(5)} same time, new\n`), frame(1, `${T(6)} later\n`)]);
  t.same(lines.map((l) => l.msg), ['same time, new', 'later']);
});

t.test('an entry without a timestamp keeps its whole text, with no time', async (t) => {
  t.same(read(new CursorGate(), [frame(1, 'no stamp here\n'), frame(1, `${'x'.repeat(100)} y\n`)]), [
    { stream: 'stdout', time: '', msg: 'no stamp here' },
    { stream: 'stdout', time: '', msg: `${'x'.repeat(100)} y` },
  ]);
});

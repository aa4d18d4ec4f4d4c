// Reading Docker's logs stream: frames split anywhere, stdout and stderr, lines
// Docker cut at 16 KiB joined again, and the cursor a resumed read starts from
// (entries already taken skipped, even several with the very same time). A line
// that never ends is sent cut and counted as it goes; the last line of a stopped
// container is taken even without a newline.
import t from 'tap';
import { CursorGate, LogStreamParser, LONG_LINE_CHARS, normTime, sinceOf, TTY_PIECE_BYTES, type OutputLine } from '../../agents/logmanager/docker-lines';
import { appLine, MAX_MSG_CHARS } from '../../agents/logmanager/levels';

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

/** The i-th of many distinct times (nanoseconds apart). */
const N = (i: number): string => `2026-05-06T07:00:00.${String(i).padStart(9, '0')}Z`;
const PIECE = 16 * 1024; // Docker's cut

t.test('a line that never ends does not wait for its end: its start goes out cut, then a count per LONG_LINE_CHARS, and the cursor moves', async (t) => {
  const perLong = LONG_LINE_CHARS / PIECE;
  const pieces = Array.from({ length: 3 * perLong + 8 }, (_, i) => frame(1, `${N(i + 1)} ${'x'.repeat(PIECE)}`));
  const gate = new CursorGate();
  const out = read(gate, pieces);
  t.same(out, [
    { stream: 'stdout', time: N(1), msg: 'x'.repeat(MAX_MSG_CHARS), note: `… [cut: the line goes on past ${LONG_LINE_CHARS} characters]` },
    { stream: 'stdout', time: N(2 * perLong), msg: '', note: `[cut: ${LONG_LINE_CHARS} more characters of the line begun at ${N(1)}]` },
    { stream: 'stdout', time: N(3 * perLong), msg: '', note: `[cut: ${LONG_LINE_CHARS} more characters of the line begun at ${N(1)}]` },
  ], 'its first 16 KiB, saying it goes on, then what follows counted');
  t.same(gate.cursor, { t: normTime(N(3 * perLong)), n: 1 }, 'the cursor is past what was sent or counted');

  const json = JSON.parse(appLine({ name: 'a', appId: 'i' }, 'stdout', out[0]!.time, out[0]!.msg, out[0]!.note).json) as { msg: string };
  t.equal(json.msg, `${'x'.repeat(MAX_MSG_CHARS)}… [cut: the line goes on past ${LONG_LINE_CHARS} characters]`, 'the controller sees the start and the note, not cut twice');

  // A resumed read starts after the last count; the rest of the line, then its end.
  const more = [...pieces, frame(1, `${N(500)} tail\n`), frame(1, `${N(501)} next\n`)];
  const again = read(gate, more);
  t.same(again.map((l) => [l.msg.length, l.note, l.time]), [
    [MAX_MSG_CHARS, `… [cut: ${8 * PIECE + 4} characters]`, N(3 * perLong + 1)],
    [4, undefined, N(501)],
  ], 'after a restart the rest reads as a line of its own, cut, then the next line');
});

t.test('the end of a long line is counted, and the next line is whole', async (t) => {
  const perLong = LONG_LINE_CHARS / PIECE;
  const pieces = Array.from({ length: perLong + 2 }, (_, i) => frame(2, `${N(i + 1)} ${'y'.repeat(PIECE)}`));
  const out = read(new CursorGate(), [...pieces, frame(2, `${N(900)} the end\n`), frame(2, `${N(901)} ok\n`)]);
  t.same(out, [
    { stream: 'stderr', time: N(1), msg: 'y'.repeat(MAX_MSG_CHARS), note: `… [cut: the line goes on past ${LONG_LINE_CHARS} characters]` },
    { stream: 'stderr', time: N(900), msg: '', note: `[cut: the line begun at ${N(1)} ends after ${2 * PIECE + 7} more characters]` },
    { stream: 'stderr', time: N(901), msg: 'ok' },
  ]);
});

t.test('a long line that ends before LONG_LINE_CHARS is one line, cut as before, whatever its pieces', async (t) => {
  const pieces = Array.from({ length: 5 }, (_, i) => frame(1, `${N(i + 1)} ${'z'.repeat(PIECE)}`));
  const out = read(new CursorGate(), [...pieces, frame(1, `${N(6)} end\n`)]);
  t.same(out, [{ stream: 'stdout', time: N(1), msg: 'z'.repeat(MAX_MSG_CHARS), note: `… [cut: ${5 * PIECE + 3} characters]` }]);
  const json = JSON.parse(appLine({ name: 'a', appId: 'i' }, 'stdout', out[0]!.time, out[0]!.msg, out[0]!.note).json) as { msg: string };
  t.equal(json.msg, appLineMsg('z'.repeat(5 * PIECE) + 'end'), 'the same message as the whole line cut by appLine');
});

function appLineMsg(whole: string): string {
  return (JSON.parse(appLine({ name: 'a', appId: 'i' }, 'stdout', 't', whole).json) as { msg: string }).msg;
}

t.test('a TTY stream without a newline is read in pieces, so its carry stays small', async (t) => {
  const gate = new CursorGate();
  gate.restart();
  const out: OutputLine[] = [];
  const p = new LogStreamParser(true, gate);
  p.push(Buffer.from(`${N(1)} `), (l) => out.push(l));
  const chunk = Buffer.alloc(TTY_PIECE_BYTES / 4, 'w');
  let pushed = 0;
  while (pushed <= LONG_LINE_CHARS + TTY_PIECE_BYTES) {
    p.push(chunk, (l) => out.push(l));
    pushed += chunk.length;
  }
  t.same(out.map((l) => [l.time, l.msg.length, l.note?.replace(/\d+/g, 'N')]), [[N(1), MAX_MSG_CHARS, '… [cut: the line goes on past N characters]']],
    'its start went out before any newline came');
  p.push(Buffer.from(`more\n${N(2)} after\n`), (l) => out.push(l));
  t.match(out[1], { msg: '', note: /^\[cut: the line begun at .* ends after \d+ more characters\]$/ }, 'its end counted');
  t.same(out[2], { stream: 'stdout', time: N(2), msg: 'after' });
});

t.test('at the end of the stream (the container stopped) a last line without a newline is taken, and not again', async (t) => {
  const gate = new CursorGate();
  const all = [frame(1, `${N(1)} one\n`), frame(1, `${N(2)} no newline at end`)];
  gate.restart();
  const out: OutputLine[] = [];
  const p = new LogStreamParser(false, gate);
  for (const c of all) p.push(c, (l) => out.push(l));
  t.same(out.map((l) => l.msg), ['one'], 'held while the stream is open');
  p.end((l) => out.push(l));
  t.same(out.map((l) => l.msg), ['one', 'no newline at end'], 'taken at its end');
  t.same(gate.cursor, { t: normTime(N(2)), n: 1 }, 'and the cursor is past it');
  t.same(read(gate, all), [], 'a later read takes nothing again');

  const tty = new CursorGate();
  tty.restart();
  const got: OutputLine[] = [];
  const q = new LogStreamParser(true, tty);
  q.push(Buffer.from(`${N(1)} a\n${N(2)} last`), (l) => got.push(l));
  q.end((l) => got.push(l));
  t.same(got.map((l) => l.msg), ['a', 'last'], 'a TTY stream\'s too');
});

t.test('one cursor for both streams: a line still open on one holds the cursor before it', async (t) => {
  const gate = new CursorGate();
  const all = [frame(1, `${N(1)} aaa`), frame(2, `${N(2)} err one\n`), frame(2, `${N(3)} err two\n`), frame(1, `${N(4)} bbb\n`)];
  t.same(read(gate, all.slice(0, 3)).map((l) => l.msg), ['err one', 'err two'], 'stderr goes on while stdout\'s line is open');
  t.equal(gate.cursor, undefined, 'the cursor stays before the open line\'s first piece');
  const again = read(gate, all);
  t.same(again.map((l) => [l.stream, l.msg]), [['stderr', 'err one'], ['stderr', 'err two'], ['stdout', 'aaabbb']],
    'after a restart the open line comes whole (stderr\'s lines again: twice rather than lost)');
  t.same(gate.cursor, { t: normTime(N(4)), n: 1 });
});

t.test('a TTY stream: Docker repeats a cut line\'s time before each piece; the pieces are one line, each an entry of the cursor', async (t) => {
  const raw = `${N(1)} ${'a'.repeat(PIECE)}${N(1)} ${'b'.repeat(PIECE)}${N(1)} tail\r\n${N(2)} next\r\n`;
  const whole = Buffer.from(raw);
  for (const cut of [1, 20, 31, 32, PIECE, PIECE + 40, whole.length - 3]) {
    const gate = new CursorGate();
    const out = read(gate, [whole.subarray(0, cut), whole.subarray(cut)], true);
    t.same(out.map((l) => [l.time, l.msg.length, l.note]), [[N(1), MAX_MSG_CHARS, `… [cut: ${2 * PIECE + 4} characters]`], [N(2), 4, undefined]], `split at ${cut}`);
    t.notOk(out[0]?.msg.includes('Z '), 'no time inside the text');
    t.same(gate.cursor, { t: normTime(N(2)), n: 1 });
  }
  // Read again from a cursor inside the cut line's entries (three at N(1)): nothing before it comes again.
  const gate = new CursorGate({ t: normTime(N(1)) as string, n: 3 });
  t.same(read(gate, [whole], true).map((l) => l.msg), ['next']);
});

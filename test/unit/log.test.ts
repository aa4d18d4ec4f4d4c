// Structured logging: JSON lines through a sink, level threshold, safe
// serialisation, and the rate-limited warning helper.
import t from 'tap';
import { Logger, RateLimitedLog, type Level, type LoggerOptions } from '../../lib/log';
import { InvalidValueError } from '../../pubsub/errors';

type Line = Record<string, unknown>;

function capture(opts: Partial<LoggerOptions> = {}): { log: Logger; raw: string[]; lines: () => Line[] } {
  const raw: string[] = [];
  const log = new Logger({ source: 'zedmanager', level: 'trace', ...opts, sink: { write: (l) => raw.push(l) } });
  return { log, raw, lines: () => raw.map((l) => JSON.parse(l) as Line) };
}

const wait = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

t.test('a JSON line has time, level, source, pid and msg, then the fields', async (t) => {
  const { log, raw, lines } = capture();
  const before = Date.now();
  log.info('app started', { app: 'web', attempt: 2, nested: { ok: true, list: [1, 'x'] } });
  const after = Date.now();
  t.equal(raw.length, 1);
  t.match(raw[0], /^\{.*\}\n$/, 'one line, newline-terminated');
  t.equal(raw[0]?.indexOf('\n'), (raw[0]?.length ?? 0) - 1, 'no newline inside');
  const line = lines()[0] as Line;
  t.same(Object.keys(line).sort(), ['app', 'attempt', 'level', 'msg', 'nested', 'pid', 'source', 'time'], 'exactly these fields');
  t.match(line.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, 'RFC 3339 UTC');
  const at = Date.parse(line.time as string);
  t.ok(at >= before && at <= after, 'the time of the call');
  t.equal(line.level, 'info');
  t.equal(line.source, 'zedmanager');
  t.equal(line.pid, process.pid);
  t.equal(line.msg, 'app started');
  t.same(line.nested, { ok: true, list: [1, 'x'] });
});

t.test('a message with newlines or quotes stays one valid line', async (t) => {
  const { log, raw, lines } = capture();
  log.warn('line one\nline "two"\u0000', { path: 'C:\\x' });
  t.equal(raw[0]?.split('\n').length, 2);
  t.equal(lines()[0]?.msg, 'line one\nline "two"\u0000');
});

t.test('the level threshold', async (t) => {
  const levels: Level[] = ['trace', 'debug', 'info', 'warn', 'error'];
  for (const [i, threshold] of levels.entries()) {
    const { log, lines } = capture({ level: threshold });
    for (const l of levels) log[l](`at ${l}`);
    t.same(lines().map((x) => x.level), levels.slice(i), `threshold ${threshold}`);
    t.same(levels.map((l) => log.enabled(l)), levels.map((_, j) => j >= i), `enabled() at ${threshold}`);
  }
  const raw: string[] = [];
  const dflt = new Logger({ source: 's', sink: { write: (l) => raw.push(l) } });
  dflt.debug('hidden');
  dflt.info('shown');
  t.equal(raw.length, 1, 'info by default');
});

t.test('errors are serialised with name, message and stack', async (t) => {
  const { log, lines } = capture();
  const plain = new Error('disk full');
  const bus = new InvalidValueError('Item', 'k', ['/n: Expected integer']);
  log.error('failed', { error: plain, inner: { errors: [bus] } });
  const line = lines()[0] as Line;
  const e = line.error as Line;
  t.equal(e.name, 'Error');
  t.equal(e.message, 'disk full');
  t.match(e.stack, /^Error: disk full\n\s+at /);
  const b = (line.inner as { errors: Line[] }).errors[0] as Line;
  t.equal(b.name, 'InvalidValueError', 'a subclass keeps its name');
  t.equal(b.message, 'Item/k: invalid value: /n: Expected integer');
  t.type(b.stack, 'string');
});

t.test('logging never throws on awkward values', async (t) => {
  const { log, lines } = capture();
  const cyclic: Record<string, unknown> = { name: 'loop' };
  cyclic.self = cyclic;
  t.doesNotThrow(() => log.info('cycle', { cyclic }));
  t.same(lines()[0]?.cyclic, { name: 'loop', self: '[cycle]' });
  t.doesNotThrow(() => log.info('bigint', { n: 2n ** 70n }));
  t.equal(lines()[1]?.n, '1180591620717411303424');
  t.doesNotThrow(() => log.info('odd', { u: undefined, f: () => 1, d: new Date(0), s: Symbol('x') }));
  const odd = lines()[2] as Line;
  t.equal(odd.d, '1970-01-01T00:00:00.000Z', 'dates as ISO strings');
  t.notOk('u' in odd || 'f' in odd || 's' in odd, 'undefined, functions and symbols are left out');
});

t.test('a value referenced twice (not a cycle) is logged both times', async (t) => {
  // safeJson remembers every object it has seen, not just the ones on the
  // current path, so shared references are reported as cycles.
  const { log, lines } = capture();
  const port = { name: 'eth0', up: true };
  log.info('ports', { wan: port, mgmt: port, list: [port, port] });
  const line = lines()[0] as Line;
  t.same(line.wan, port);
  t.same({ mgmt: line.mgmt, list: line.list }, { mgmt: port, list: [port, port] }, 'the second reference is the object, not "[cycle]"');
});

t.test('fields cannot overwrite the line\'s own time, level, source, pid or msg', async (t) => {
  // zedbox/supervisor.ts logs { agent, pid: err.holderPid }: with the spread
  // after the core fields, that line claims to come from the other process.
  const { log, lines } = capture();
  log.warn('agent runs in another process', { agent: 'nim', pid: 999999, level: 'debug', source: 'x', msg: 'y', time: 'z' });
  const line = lines()[0] as Line;
  t.equal(line.pid, process.pid, 'pid');
  t.equal(line.level, 'warn', 'level');
  t.equal(line.source, 'zedmanager', 'source');
  t.equal(line.msg, 'agent runs in another process', 'msg');
  t.not(line.time, 'z', 'time');
  t.equal(line.agent, 'nim', 'other fields are kept');
});

t.test('text format', async (t) => {
  const { log, raw } = capture({ format: 'text' });
  log.warn('slow', { ms: 12 });
  log.error('plain');
  log.info('empty fields', {});
  t.match(raw[0], /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z WARN  zedmanager: slow \{"ms":12\}\n$/);
  t.match(raw[1], /^\S+ ERROR zedmanager: plain\n$/);
  t.match(raw[2], /^\S+ INFO  zedmanager: empty fields\n$/);
});

t.test('child loggers share level, format and sink under another source', async (t) => {
  const { log, lines } = capture({ level: 'warn' });
  const child = log.child('nim');
  t.equal(child.source, 'nim');
  child.info('filtered');
  child.warn('kept');
  log.error('parent');
  t.same(lines().map((l) => [l.source, l.msg]), [['nim', 'kept'], ['zedmanager', 'parent']]);
});

t.test('RateLimitedLog', async (t) => {
  t.test('logs once per key and interval and counts what it suppressed', async (t) => {
    const { log, lines } = capture();
    const rl = new RateLimitedLog(log, 150);
    rl.warn('malformed', 'bad frame', { n: 1 });
    rl.warn('malformed', 'bad frame', { n: 2 });
    rl.warn('malformed', 'bad frame', { n: 3 });
    rl.warn('other', 'other problem');
    t.same(lines().map((l) => [l.level, l.msg, l.n]), [['warn', 'bad frame', 1], ['warn', 'other problem', undefined]]);
    t.notOk('suppressedSinceLast' in (lines()[0] as Line));

    await wait(200);
    rl.warn('malformed', 'bad frame', { n: 4 });
    const fourth = lines()[2] as Line;
    t.equal(fourth.n, 4, 'the next line after the interval is logged with its own fields');
    t.equal(fourth.suppressedSinceLast, 2, 'and how many were suppressed');

    rl.warn('malformed', 'bad frame', { n: 5 });
    t.equal(lines().length, 3, 'the interval starts again');
    await wait(200);
    rl.warn('other', 'other problem');
    t.notOk('suppressedSinceLast' in (lines()[3] as Line), 'nothing suppressed for that key: no count');
  });

  t.test('respects the logger threshold', async (t) => {
    const { log, lines } = capture({ level: 'error' });
    new RateLimitedLog(log, 10).warn('k', 'hidden');
    t.same(lines(), []);
  });

  t.test('a wall-clock step backwards does not mute warnings', async (t) => {
    // Edge devices often boot with a wrong clock and step it when NTP answers.
    // The limiter measures intervals with Date.now(), so after the clock goes
    // back an hour every key stays muted for an hour.
    const realNow = Date.now;
    t.teardown(() => { Date.now = realNow; });
    const { log, lines } = capture();
    const rl = new RateLimitedLog(log, 50);
    rl.warn('k', 'first');
    Date.now = () => realNow() - 3_600_000; // NTP steps the clock back an hour
    await wait(120);
    rl.warn('k', 'second, well after the interval');
    t.equal(lines().length, 2, 'the second warning is logged');
  });
});

// Remote levels: the Logger's local and remote thresholds (a line goes to stderr,
// to the relay, both or neither; a source at none builds nothing), the levels the
// relays get from the config items, the filter for apps, and the conversion of a
// Logger line or an app's output into the LogLine the controller stores.
import t from 'tap';
import { LogLineSchema, type LogLine } from '../../api/logs';
import { Value } from '@sinclair/typebox/value';
import { agentLevels, agentLine, appLevel, appLine, MAX_FIELDS_CHARS, MAX_MSG_CHARS, passes, sourceLevel } from '../../agents/logmanager/levels';
import { Logger, type Level, type RemoteLogSink } from '../../lib/log';
import { remoteRank, parseLevels, type RelayLevels } from '../../lib/log-relay';

/** A remote sink as the relay is to the Logger: a threshold per source, and what it was sent. */
function remote(levels: RelayLevels): RemoteLogSink & { sent: string[]; filteredCount: number; asked: number } {
  const r = {
    sent: [] as string[], filteredCount: 0, asked: 0,
    threshold(source: string) { r.asked++; return remoteRank(levels.sources[source] ?? levels.default); },
    send(line: string) { r.sent.push(line); },
    filtered() { r.filteredCount++; },
  };
  return r;
}

const ALL: Level[] = ['trace', 'debug', 'info', 'warn', 'error'];

t.test('local and remote thresholds are independent', async (t) => {
  const local: string[] = [];
  const r = remote({ default: 'info', sources: { zedagent: 'debug', quiet: 'none', loud: 'warn' } });
  const root = new Logger({ source: 'zedbox', level: 'info', sink: { write: (l) => local.push(l) }, remote: r });
  const za = root.child('zedagent');
  for (const l of ALL) za[l](`za ${l}`);
  t.same(local.map((l) => (JSON.parse(l) as { msg: string }).msg), ['za info', 'za warn', 'za error'], 'stderr at its own level (info)');
  t.same(r.sent.map((l) => (JSON.parse(l) as { msg: string }).msg), ['za debug', 'za info', 'za warn', 'za error'], 'the relay gets debug too');
  t.equal(r.sent[1], local[0], 'the same JSON line both ways');
  t.equal(r.filteredCount, 0);

  const loud = root.child('loud');
  for (const l of ALL) loud[l](`loud ${l}`);
  t.same(r.sent.slice(4).map((l) => (JSON.parse(l) as { msg: string }).msg), ['loud warn', 'loud error'], 'warn keeps info back from the controller');
  t.equal(r.filteredCount, 1, 'the info line went to stderr only: counted as filtered');
  t.same([za.enabled('debug'), za.enabled('trace'), loud.enabled('info'), loud.enabled('debug')], [true, false, true, false], 'enabled() is either side');
});

t.test('a source at none costs nothing: no line is built', async (t) => {
  const local: string[] = [];
  const r = remote({ default: 'info', sources: { quiet: 'none' } });
  const quiet = new Logger({ source: 'quiet', level: 'error', sink: { write: (l) => local.push(l) }, remote: r });
  let built = 0;
  const fields = { get costly() { built++; return 1; } };
  quiet.info('never', fields);
  quiet.debug('never', fields);
  t.same([local, r.sent, built, r.filteredCount], [[], [], 0, 0], 'nothing written, sent, serialised or counted');
  t.notOk(quiet.enabled('warn'));
});

t.test('text format locally, JSON to the relay', async (t) => {
  const local: string[] = [];
  const r = remote({ default: 'debug', sources: {} });
  const log = new Logger({ source: 'nim', level: 'info', format: 'text', sink: { write: (l) => local.push(l) }, remote: r });
  log.info('up', { port: 'eth0' });
  log.debug('detail');
  t.match(local, [/^\S+ INFO  nim: up \{"port":"eth0"\}\n$/]);
  t.same(r.sent.map((l) => JSON.parse(l) as Record<string, unknown>).map((o) => [o.level, o.source, o.msg, o.port]), [['info', 'nim', 'up', 'eth0'], ['debug', 'nim', 'detail', undefined]]);
});

t.test('local() drops the remote sink (logmanager\'s notes about the relay)', async (t) => {
  const local: string[] = [];
  const r = remote({ default: 'trace', sources: {} });
  const log = new Logger({ source: 'logmanager', level: 'info', sink: { write: (l) => local.push(l) }, remote: r });
  log.local().warn('relay line cut');
  t.equal(local.length, 1);
  t.same(r.sent, []);
  const plain = new Logger({ source: 'x' });
  t.equal(plain.local(), plain, 'a logger without one is returned as is');
});

t.test('the relays\' levels come from the config items', async (t) => {
  t.same(agentLevels(undefined), { default: 'info', sources: {} }, 'defaults');
  const items = {
    'debug.default.remote.loglevel': 'warn',
    'agent.zedagent.remote.loglevel': 'debug',
    'agent.nim.remote.loglevel': 'bogus', // invalid: the default applies
    'app.web.remote.loglevel': 'error',
  };
  const levels = agentLevels(items);
  t.same(levels, { default: 'warn', sources: { zedagent: 'debug', nim: 'warn' } });
  t.equal(sourceLevel(levels, 'zedagent'), 'debug');
  t.equal(sourceLevel(levels, 'domainmgr'), 'warn');
  t.equal(appLevel(items, 'web'), 'error');
  t.equal(appLevel(items, 'db'), 'info', 'debug.app.remote.loglevel by default');
  t.same(ALL.map((l) => passes(l, 'warn')), [false, false, false, true, true]);
  t.same(ALL.map((l) => passes(l, 'none')), [false, false, false, false, false]);
  t.same(parseLevels({ ctl: 'levels', default: 'debug', sources: { a: 'none', b: 'loud' } }), { default: 'debug', sources: { a: 'none' } }, 'a bad level in a levels line is left out');
  t.equal(parseLevels({ ctl: 'levels', default: 'loud' }), undefined);
});

t.test('a Logger line becomes a LogLine: core fields kept, the rest under fields', async (t) => {
  const now = (): string => '2026-01-01T00:00:00.000Z';
  const l = agentLine('{"time":"2026-05-06T07:00:00.000Z","level":"warn","source":"zedagent","pid":42,"msg":"slow","ms":12}', 'logmanager', now);
  const line = JSON.parse(l.json) as LogLine;
  t.same(line, { time: '2026-05-06T07:00:00.000Z', source: 'zedagent', level: 'warn', msg: 'slow', fields: { pid: 42, ms: 12 } });
  t.ok(Value.Check(LogLineSchema, line), 'valid against the contract');
  t.same([l.time, l.source, l.level], ['2026-05-06T07:00:00.000Z', 'zedagent', 'warn']);
});

t.test('a relayed line that is not a log line is kept, as a warning that says what is wrong', async (t) => {
  const now = (): string => '2026-01-01T00:00:00.000Z';
  const cases: Array<[string, RegExp]> = [
    ['plain text', /not a JSON object/],
    ['{"time":"t","level":"loud","source":"x","msg":"m"}', /field level/],
    ['{"time":"t","level":"info","source":"","msg":"m"}', /field source/],
    ['{"time":"t","level":"info","source":"x"}', /field msg/],
    ['{"level":"info","source":"x","msg":"m"}', /field time/],
    [JSON.stringify({ time: 't'.repeat(65), level: 'info', source: 'x', msg: 'm' }), /field time/],
  ];
  for (const [text, problem] of cases) {
    const line = JSON.parse(agentLine(text, 'logmanager', now).json) as LogLine;
    t.equal(line.msg, text, 'the text is kept whole');
    t.match(line, { source: 'logmanager', level: 'warn', time: now(), fields: { problem } }, `${text}: ${problem}`);
    t.ok(Value.Check(LogLineSchema, line));
  }
});

t.test('long messages and fields are cut, so any line fits a batch', async (t) => {
  const big = 'x'.repeat(MAX_MSG_CHARS + 10);
  const text = JSON.stringify({ time: 't', level: 'info', source: 's', msg: big, blob: 'y'.repeat(MAX_FIELDS_CHARS) });
  const line = JSON.parse(agentLine(text, 'logmanager', () => 'now').json) as LogLine;
  t.match(line.msg, /… \[cut: 16394 characters\]$/);
  t.equal(line.msg.length < MAX_MSG_CHARS + 40, true);
  t.match(line.fields, { cut: /fields of \d+ characters left out/ });
});

t.test('an app\'s output line: tagged with the app, stdout info, stderr warn', async (t) => {
  const app = { name: 'web', appId: '6ba7b810-9dad-11d1-80b4-00c04fd430c8' };
  const out = appLine(app, 'stdout', '2026-05-06T07:00:00.123456789Z', 'GET / 200');
  t.same(JSON.parse(out.json), { time: '2026-05-06T07:00:00.123456789Z', source: 'app', level: 'info', msg: 'GET / 200', app: 'web', appId: app.appId, stream: 'stdout' });
  t.equal(appLine(app, 'stderr', 't', 'oops').level, 'warn');
  t.ok(Value.Check(LogLineSchema, JSON.parse(out.json)));
});

// One side of the bus benchmark: `pub <dir>` owns BenchItem through a Bus
// endpoint, `sub <dir>` mirrors it through Bus.subscribe.
import { Logger, type LogSink } from '../lib/log';
import { Bus } from '../pubsub/bus';
import { BenchItem, CATALOG, OWNER, Tracker, drive, gcStats, rssMb, resetGc, reasonKey, send, serve, type Item, type RunCmd } from './common';

const [role, dir] = process.argv.slice(2);
if ((role !== 'pub' && role !== 'sub') || !dir) throw new Error('usage: bus-child.ts pub|sub <dir>');

// Debug level only to hear why each snapshot was requested; warnings still reach stderr.
const reasons: Record<string, number> = {};
const sink: LogSink = {
  write(line) {
    try {
      const o = JSON.parse(line) as { msg?: string; level?: string; reason?: unknown };
      if (o.msg === 'requesting snapshot') reasons[reasonKey(o.reason)] = (reasons[reasonKey(o.reason)] ?? 0) + 1;
      else if (o.level === 'warn' || o.level === 'error') process.stderr.write(line);
    } catch {
      process.stderr.write(line);
    }
  },
};
const log = new Logger({ source: `bench-${role}`, level: 'debug', sink });
const bus = new Bus({ runDir: `${dir}/run`, persistDir: `${dir}/persist`, log, catalog: CATALOG });

async function publisher(): Promise<void> {
  const ep = await bus.endpoint(OWNER);
  const pub = ep.publication(BenchItem);
  serve(async (cmd) => {
    const sent = await drive(cmd, (key, v) => pub.publish(key, v));
    // How far publish() ran ahead of the socket (zeromq.js takes 512 messages a turn).
    send({ ...sent, maxBacklog: ep.backlog.peak });
  }, () => bus.close());
  send({ type: 'ready' });
}

async function subscriber(): Promise<void> {
  let tracker: Tracker | undefined;
  const onValue = (_key: string, v: Readonly<Item>): void => tracker?.onValue(v as Item);
  const sub = bus.subscribe(BenchItem, { agent: 'benchsub', create: onValue, modify: onValue });
  await sub.whenSynchronized();
  const link = bus.link(OWNER);
  const mirror = link.mirrorOf(BenchItem.type);
  if (!mirror) throw new Error('no mirror after synchronizing');

  serve((cmd: RunCmd) => {
    const resyncs0 = link.stats.resyncs;
    const gaps0 = mirror.stats.gaps;
    for (const k of Object.keys(reasons)) delete reasons[k];
    const finish = (): void => {
      clearTimeout(timer);
      const t = tracker as Tracker;
      tracker = undefined;
      send({
        type: 'done',
        complete: t.done,
        missing: t.missing,
        tEnd: t.done ? t.tEnd : process.hrtime.bigint(),
        applied: t.applied,
        resyncs: link.stats.resyncs - resyncs0,
        gaps: mirror.stats.gaps - gaps0,
        reasons: { ...reasons },
        lat: t.latency(),
        rss: rssMb(),
        gc: gcStats(),
      });
    };
    const timer = setTimeout(finish, cmd.timeoutMs);
    resetGc();
    tracker = new Tracker(cmd, finish);
    send({ type: 'armed' });
  }, () => bus.close());
  send({ type: 'ready' });
}

void (role === 'pub' ? publisher() : subscriber()).catch((err) => {
  process.stderr.write(`bus-child ${role} failed: ${(err as Error).stack}\n`);
  process.exit(1);
});

// The baseline: plain zeromq PUB/SUB between two processes, the same payloads,
// JSON.stringify on one side and JSON.parse on the other, nothing else.
// High-water marks are unlimited so the baseline loses nothing (and needs no resync).
import { Publisher, Subscriber } from 'zeromq';
import { Tracker, drive, gcStats, rssMb, resetGc, send, serve, type Item, type RunCmd } from './common';

const [role, dir] = process.argv.slice(2);
if ((role !== 'pub' && role !== 'sub') || !dir) throw new Error('usage: raw-child.ts pub|sub <dir>');
const endpoint = `ipc://${dir}/raw.pub`;
const TOPIC = Buffer.from('BenchItem\0');
const PROBE = Buffer.from('\0probe');

async function publisher(): Promise<void> {
  const pub = new Publisher({ linger: 0, sendHighWaterMark: 0 });
  await pub.bind(endpoint);
  // Probes until the first run, so the subscriber can tell its subscription is live.
  let probing = true;
  const probe = async (): Promise<void> => {
    for (let i = 0; probing && i < 3000; i++) {
      await pub.send([PROBE]);
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  const probed = probe();
  serve(async (cmd) => {
    probing = false;
    await probed; // one send in flight per socket
    send(await drive(cmd, (_key, v) => pub.send([TOPIC, Buffer.from(JSON.stringify(v))])));
  }, () => pub.close());
  send({ type: 'ready' });
}

async function subscriber(): Promise<void> {
  const sub = new Subscriber({ linger: 0, receiveHighWaterMark: 0, maxMessageSize: 4 << 20 });
  sub.connect(endpoint);
  sub.subscribe();
  let tracker: Tracker | undefined;
  let ready = false;

  serve((cmd: RunCmd) => {
    const finish = (): void => {
      clearTimeout(timer);
      const t = tracker as Tracker;
      tracker = undefined;
      send({
        type: 'done', complete: t.done, missing: t.missing, tEnd: t.done ? t.tEnd : process.hrtime.bigint(),
        applied: t.applied, resyncs: 0, gaps: 0, reasons: {}, lat: t.latency(), rss: rssMb(),
        gc: gcStats(),
      });
    };
    const timer = setTimeout(finish, cmd.timeoutMs);
    resetGc();
    tracker = new Tracker(cmd, finish);
    send({ type: 'armed' });
  }, () => sub.close());

  try {
    for await (const frames of sub) {
      if (frames.length === 1) {
        if (!ready) send({ type: 'ready' });
        ready = true;
        continue;
      }
      const v = JSON.parse((frames[1] as Buffer).toString('utf8')) as Item;
      tracker?.onValue(v);
    }
  } catch (err) {
    if (!sub.closed) throw err; // closing on 'exit' ends the loop with an error
  }
}

void (role === 'pub' ? publisher() : subscriber()).catch((err) => {
  process.stderr.write(`raw-child ${role} failed: ${(err as Error).stack}\n`);
  process.exit(1);
});

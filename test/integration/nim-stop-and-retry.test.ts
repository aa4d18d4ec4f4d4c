// nim's applier and DHCP service in a network namespace of their own (a child
// process, so port 67 and the links are the namespace's): once stopped, a late
// reconcile starts neither a DHCP client nor the DHCP server; and a DHCP server
// that cannot start because port 67 is taken says so once, keeps the error in its
// status, and starts on its own (with a backoff) once the port is free.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import type { LocalNetworkPort } from '../../agents/nim/local-networks';
import type { NetworkPortConfig } from '../../pubsub/collections/network';
import { jsonLine, ROOT, start, type Proc } from '../lib/proc';

const NS = `zbs${process.pid}`;
/** The far ends of the links (so ethD's DHCP broadcasts do not reach the server on ethL). */
const FAR = `zbs${process.pid}f`;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zb-nim-stop-'));
const procs: Proc[] = [];
const ip = (...args: string[]): string => execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const inNs = (...args: string[]): string => ip('netns', 'exec', NS, ...args);

t.before(() => {
  ip('netns', 'add', NS);
  ip('netns', 'add', FAR);
  ip('-n', NS, 'link', 'set', 'lo', 'up');
  // ethL: a local network (nim serves DHCP on it); ethD: a management port on DHCP (nim runs udhcpc; nobody answers).
  for (const n of ['ethL', 'ethD']) {
    ip('-n', NS, 'link', 'add', n, 'type', 'veth', 'peer', 'name', `${n}p`, 'netns', FAR);
    ip('-n', FAR, 'link', 'set', `${n}p`, 'up');
  }
});
t.teardown(async () => {
  for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
  await Promise.all(procs.map((p) => p.exited));
  try {
    for (const pid of ip('netns', 'pids', NS).split('\n').filter(Boolean)) process.kill(Number(pid), 'SIGKILL');
  } catch { /* none */ }
  for (const ns of [NS, FAR]) try { ip('netns', 'del', ns); } catch { /* not made */ }
  fs.rmSync(dir, { recursive: true, force: true });
});

const dhcpServer = { rangeStart: '10.201.0.50', rangeEnd: '10.201.0.60', leaseSeconds: 600 };
const PORTS: NetworkPortConfig[] = [
  { ifName: 'ethL', management: false, cost: 0, addressing: { type: 'static', address: '10.201.0.1/24' }, dhcpServer },
  { ifName: 'ethD', management: true, cost: 0, addressing: { type: 'dhcp' } },
];
const LOCAL: LocalNetworkPort[] = [{ ifName: 'ethL', address: '10.201.0.1/24', config: dhcpServer }];

/** Runs `code` (JavaScript; nim's modules load through tsx) with node in the namespace. */
function child(code: string, env: Record<string, string>): Proc {
  const prelude = `
    const R = (m) => require(${JSON.stringify(ROOT)} + '/' + m);
    const { Logger } = R('lib/log');
    const log = new Logger({ source: 'nim', level: 'debug', format: 'json', sink: { write: (l) => process.stdout.write(l) } });
    const say = (o) => console.log(JSON.stringify(o));
    // A signal handler alone does not keep node running between the steps.
    const until = (signal) => new Promise((r) => { const keep = setInterval(() => {}, 60_000); process.once(signal, () => { clearInterval(keep); r(); }); });
  `;
  const p = start('ip', ['netns', 'exec', NS, process.execPath, '--import', 'tsx', '-e', prelude + code], env);
  procs.push(p);
  return p;
}

const udhcpcs = (): number => ip('netns', 'pids', NS).split('\n').filter(Boolean)
  .filter((pid) => { try { return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes('udhcpc'); } catch { return false; } }).length;
const listening67 = (): boolean => /:67\b/.test(inNs('ss', '-Hulnp'));
const event = (p: Proc, name: string, what: string): Promise<Record<string, unknown>> =>
  p.waitFor((l) => jsonLine(l)?.event === name, what, 20_000).then((l) => jsonLine(l)!);

t.test('after stop(), a late reconcile starts no DHCP client and no DHCP server', async (t) => {
  const run = path.join(dir, 'a');
  const p = child(`
    const { Applier } = R('agents/nim/applier');
    const { DhcpService } = R('agents/nim/dhcp-service');
    const { observeHost } = R('agents/nim/host-observer');
    const dir = process.env.RUN;
    const resolvConf = dir + '/resolv.conf';
    const svc = new DhcpService({ persistDir: dir + '/persist', log });
    const applier = new Applier({ runDir: dir + '/run', resolvConf, log, localNetworks: svc, observe: () => observeHost(resolvConf), onChange: () => {} });
    const ports = JSON.parse(process.env.PORTS);
    (async () => {
      await applier.apply(ports);
      say({ event: 'applied', serving: svc.status('ethL') ?? null });
      await until('SIGUSR2');
      await applier.stop();
      say({ event: 'stopped' });
      await until('SIGUSR2');
      // What a lease event, a host change or the last pass would do once nim stopped.
      await applier.apply(ports);
      await applier.setPreferred('ethD');
      await applier.reconcile();
      say({ event: 'reconciled', serving: svc.status('ethL') ?? null });
    })().catch((err) => { say({ event: 'error', message: err.stack }); process.exitCode = 1; });
  `, { RUN: run, PORTS: JSON.stringify(PORTS) });
  t.teardown(() => { if (!t.passing()) t.comment(p.lines.join('\n')); });

  t.match(await event(p, 'applied', 'the configuration applied'), { serving: { leases: 0, poolSize: 11 } }, 'running: the DHCP server serves ethL');
  t.ok(listening67(), 'port 67 is taken by the server');
  t.equal(udhcpcs(), 1, 'a DHCP client runs on ethD');

  p.child.kill('SIGUSR2');
  await event(p, 'stopped', 'stop()');
  t.notOk(listening67(), 'stopped: no DHCP server');
  t.equal(udhcpcs(), 0, 'stopped: no DHCP client');

  p.child.kill('SIGUSR2');
  t.match(await event(p, 'reconciled', 'the late reconcile'), { serving: null }, 'the late reconcile set up no server');
  t.notOk(listening67(), 'still no DHCP server after the late reconcile');
  t.equal(udhcpcs(), 0, 'still no DHCP client after the late reconcile');
  // Nothing left running keeps the process: it ends by itself.
  const killer = setTimeout(() => p.child.kill('SIGKILL'), 10_000);
  const exit = await p.exited;
  clearTimeout(killer);
  t.same(exit, { code: 0, signal: null }, 'the process ends on its own: nothing left running');
});

t.test('port 67 taken: the error is logged once and kept in the status; the server starts once the port is free', async (t) => {
  const run = path.join(dir, 'b');
  const p = child(`
    const dgram = require('node:dgram');
    const { DhcpService } = R('agents/nim/dhcp-service');
    const ports = JSON.parse(process.env.LOCAL);
    let svc;
    let changes = 0;
    const blocker = dgram.createSocket('udp4');
    blocker.bind({ port: 67, address: '0.0.0.0', exclusive: true }, async () => {
      svc = new DhcpService({
        persistDir: process.env.RUN, log, backoff: { minMs: 100, maxMs: 200, jitter: 0 },
        onChange: () => {
          const st = svc.status('ethL');
          say({ event: 'changed', n: ++changes, status: st });
          // Three retries that failed like the first: then the port is freed.
          if (changes === 3) blocker.close(() => say({ event: 'freed' }));
          if (!st.error) svc.stop().then(() => say({ event: 'done' }));
        },
      });
      // Reconciles come often (every lease event, host change, test): none of them may rebuild the server.
      for (let i = 0; i < 5; i++) await svc.apply(ports);
      say({ event: 'applied', status: svc.status('ethL') });
    });
  `, { RUN: run, LOCAL: JSON.stringify(LOCAL) });
  t.teardown(() => { if (!t.passing()) t.comment(p.lines.join('\n')); });

  const applied = await event(p, 'applied', 'five reconciles');
  t.match(applied, { status: { leases: 0, poolSize: 11, error: /^DHCP server on ethL: cannot listen on UDP port 67: .*EADDRINUSE/ } }, 'the status names the port and why');
  const serving = await p.waitFor((l) => jsonLine(l)?.event === 'changed' && !(jsonLine(l)!.status as { error?: string }).error, 'the server to start on a retry', 20_000);
  t.same(jsonLine(serving)!.status, { leases: 0, poolSize: 11 }, 'serving once the port is free, without an error');
  await event(p, 'done', 'stop');
  const killer = setTimeout(() => p.child.kill('SIGKILL'), 10_000);
  t.same(await p.exited, { code: 0, signal: null });
  clearTimeout(killer);

  const msgs = p.lines.map((l) => jsonLine(l)?.msg).filter(Boolean);
  t.equal(msgs.filter((m) => m === 'cannot serve DHCP').length, 1, 'the same error logged once, through five reconciles and three retries');
  t.ok((jsonLine(serving)!.n as number) > 3, 'it was retried while the port was taken');
  t.equal(msgs.filter((m) => m === 'serving DHCP').length, 1, 'and said when it started');
  const errors = p.lines.filter((l) => jsonLine(l)?.msg === 'cannot serve DHCP').map((l) => jsonLine(l)!);
  t.match(errors[0], { port: 'ethL', retryInSeconds: 0.1 }, 'the log says when it is tried again');
});

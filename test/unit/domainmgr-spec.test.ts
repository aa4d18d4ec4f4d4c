// DomainConfig → Docker create options, DomainStatus, DomainMetric and log frames: pure mappings.
import t from 'tap';
import { demuxFrames, dockerSince, splitLines } from '../../agents/domainmgr/container-driver';
import { appNetworks, containerName, createOptions } from '../../agents/domainmgr/container-spec';
import type { AppRecord, Limits, ObservedContainer } from '../../agents/domainmgr/records';
import { domainStatus, metricFromStats } from '../../agents/domainmgr/status';
import type { DomainConfig } from '../../pubsub/collections/apps';
import { newBoxKeyPair } from '../../lib/keys';
import { openSecret, sealSecret, type MaybeSealedString } from '../../lib/secrets';

const A = 'aaaaaaaa-0000-4000-8000-000000000001';
const N = 'nnnnnnnn-0000-4000-8000-000000000009'.replace(/n/g, 'c');
const limits: Limits = { crashLimit: 3, crashWindowMs: 600_000, restartBackoffMaxMs: 60_000, retryMaxMs: 60_000 };
const cfg: DomainConfig = {
  appId: A, name: 'web', activate: true, imageRef: 'img:1', entrypoint: ['/bin/sh'], command: ['-c', 'httpd'], env: { A: '1', B: 'x=y' },
  ports: [{ container: 80, host: 8080 }, { container: 80, host: 8081, hostIp: '127.0.0.1' }, { container: 53, host: 5353, protocol: 'udp' }],
  memoryMiB: 64, cpus: 1.5, mounts: [{ hostPath: '/data/v1', containerPath: '/data', readonly: true }], networkInstanceIds: [], specHash: 'h1',
};

t.test('create options carry every part of the config', async (t) => {
  const o = createOptions(cfg, 'inst1', [], plain);
  t.equal(o.name, 'zedbox-inst1-web-aaaaaaaa', 'the name carries the instance, the app name and its id');
  t.equal(containerName('inst1', cfg), o.name);
  t.same(o.Entrypoint, ['/bin/sh']);
  t.same(o.Cmd, ['-c', 'httpd']);
  t.same(o.Env, ['A=1', 'B=x=y']);
  t.same(o.Labels, { 'org.zedbox.owned': '1', 'org.zedbox.instance': 'inst1', 'org.zedbox.app': A, 'org.zedbox.spec': 'h1' });
  t.same(o.ExposedPorts, { '80/tcp': {}, '53/udp': {} });
  t.same(o.HostConfig?.PortBindings, { '80/tcp': [{ HostPort: '8080' }, { HostIp: '127.0.0.1', HostPort: '8081' }], '53/udp': [{ HostPort: '5353' }] });
  t.equal(o.HostConfig?.Memory, 64 * 1024 * 1024);
  t.equal(o.HostConfig?.NanoCpus, 1_500_000_000);
  t.same(o.HostConfig?.Binds, ['/data/v1:/data:ro']);
  t.equal(o.HostConfig?.Init, true);
  t.same(o.HostConfig?.RestartPolicy, { Name: 'no' });
  t.equal(o.HostConfig?.NetworkMode, 'bridge', 'no network instance: the default bridge');
  t.equal(createOptions(cfg, 'inst1', ['zedbox-inst1-lan'], plain).HostConfig?.NetworkMode, 'zedbox-inst1-lan');
  const noCmd = createOptions({ ...cfg, entrypoint: undefined, command: undefined }, 'i', [], plain);
  t.notOk('Entrypoint' in noCmd || 'Cmd' in noCmd, "the image's own entrypoint and command are kept when none is given");
});

t.test('a network instance without its config is an error naming both', async (t) => {
  const withNi = { ...cfg, networkInstanceIds: [N] };
  t.throws(() => appNetworks(withNi, 'i', new Map()), new RegExp(`DomainConfig ${A}: networkInstanceIds names ${N}`));
  t.same(appNetworks(withNi, 'i', new Map([[N, { id: N, name: 'lan', type: 'local' as const }]])), ['zedbox-i-lan']);
});

const running: ObservedContainer = {
  id: 'c1', name: 'zedbox-web-aaaaaaaa', appId: A, specHash: 'h1', status: 'running', running: true, exitCode: 0,
  startedAt: '2026-01-01T00:00:00Z', finishedAt: '0001-01-01T00:00:00Z',
};
const rec = (over: Partial<AppRecord> = {}): AppRecord => ({ specHash: 'h1', activate: true, crashTimes: [], restarts: 0, broken: false, ...over });

t.test('status states', async (t) => {
  const stopped = { ...running, running: false, status: 'exited' };
  const cases: Array<[string, DomainConfig, ObservedContainer | undefined, AppRecord | undefined, string | undefined, string, boolean]> = [
    ['running as configured', cfg, running, rec(), undefined, 'RUNNING', true],
    ['about to be created', cfg, undefined, undefined, 'create', 'BOOTING', false],
    ['running an old spec', cfg, { ...running, specHash: 'h0' }, rec(), 'recreate', 'BOOTING', false],
    ['crash-looped', cfg, stopped, rec({ broken: true }), undefined, 'BROKEN', false],
    ['being stopped', { ...cfg, activate: false }, running, rec(), 'stop', 'HALTING', false],
    ['stopped', { ...cfg, activate: false }, stopped, rec(), undefined, 'HALTED', false],
  ];
  for (const [name, c, o, r, pending, state, activated] of cases) {
    const s = domainStatus(c, o, r, pending as never, 0, limits);
    t.same([s.state, s.activated], [state, activated], name);
  }
  const broken = domainStatus(cfg, { ...running, running: false }, rec({ broken: true, crashTimes: [1, 2, 3], lastExitCode: 3, lastLogLines: ['dying'] }), undefined, 0, limits);
  t.match(broken.error, { severity: 'error', error: /exited 3 times within 600 s .*last exit code 3; last output: dying/ });
  const failing = domainStatus(cfg, undefined, rec({ failure: { action: 'create', message: 'no such image', count: 2, firstAt: 0, retryAt: 4000 } }), undefined, 1000, limits);
  t.same(failing.error, { error: 'no such image', time: new Date(0).toISOString(), severity: 'notice', retryCondition: 'will retry create in 3 s; failed 2 times', source: 'DomainStatus' });
});

t.test('a stats sample becomes a metric (cgroup v2 and v1)', async (t) => {
  const v2 = metricFromStats(A, {
    cpu_stats: { cpu_usage: { total_usage: 3_000_000 }, system_cpu_usage: 20_000_000, online_cpus: 2 },
    precpu_stats: { cpu_usage: { total_usage: 1_000_000 }, system_cpu_usage: 10_000_000 },
    memory_stats: { usage: 10_000, limit: 50_000, stats: { inactive_file: 4000 } },
  }, 0);
  t.same({ ...v2, time: undefined }, { appId: A, time: undefined, cpuPercent: 40, cpuTotalNanos: 3_000_000, memoryBytes: 6000, memoryLimitBytes: 50_000 });
  const v1 = metricFromStats(A, { cpu_stats: { cpu_usage: { total_usage: 5, percpu_usage: [1, 2, 2] } }, memory_stats: { usage: 900, limit: 1000, stats: { cache: 100 } } }, 0);
  t.same([v1.cpuPercent, v1.memoryBytes], [0, 800], 'no previous sample: 0 %, cache taken off');
  t.same(metricFromStats(A, {}, 0).memoryBytes, 0, 'an empty answer (container gone) gives zeros, not NaN');
});

t.test('log frames are demultiplexed in order; raw text passes through', async (t) => {
  const frame = (stream: number, text: string): Buffer => {
    const h = Buffer.alloc(8);
    h[0] = stream;
    h.writeUInt32BE(Buffer.byteLength(text), 4);
    return Buffer.concat([h, Buffer.from(text)]);
  };
  t.same(splitLines(demuxFrames(Buffer.concat([frame(1, 'out 1\n'), frame(2, 'err 1\n'), frame(1, 'out 2\n')]))), ['out 1', 'err 1', 'out 2']);
  t.same(splitLines(demuxFrames(Buffer.from('plain\ntext\n'))), ['plain', 'text']);
  t.same(splitLines(demuxFrames(Buffer.alloc(0))), []);
});

t.test("Docker's since keeps the nanoseconds of an exit time", async (t) => {
  t.equal(dockerSince('2026-11-22T23:26:39.45682448Z'), '1795389999.456824480');
  t.equal(dockerSince('2026-11-22T23:26:39Z'), '1795389999.000000000');
  t.equal(dockerSince('0001-01-01T00:00:00Z'), undefined, 'never exited: no since');
  t.equal(dockerSince('garbage'), undefined);
});

function plain(v: MaybeSealedString): string {
  if (typeof v !== 'string') throw new Error('no keys in this test');
  return v;
}

t.test('a sealed env value is opened for the engine and only there', async (t) => {
  const device = newBoxKeyPair();
  const sealed = sealSecret('s3cret-value', device.publicKey, new Uint8Array(32).fill(7));
  const withSecret: DomainConfig = { ...cfg, env: { TOKEN: sealed } };
  const o = createOptions(withSecret, 'inst1', [], (v) => openSecret(v, device.secretKey));
  t.same(o.Env, ['TOKEN=s3cret-value'], 'the container gets the clear value');
  t.notMatch(JSON.stringify(withSecret), /s3cret-value/, 'the DomainConfig itself carries only the sealed box');
  const other = newBoxKeyPair();
  t.throws(() => createOptions(withSecret, 'inst1', [], (v) => openSecret(v, other.secretKey)), /env TOKEN: sealed secret does not open/,
    'a value sealed to another device fails with the variable named');
});

// The info and metrics builders: bus values in, reported values out. Every
// value built here must pass its api/info.ts schema, and no secret of the
// config (sealed or clear env values, datastore passwords) may show up in any
// of them.
import * as fs from 'node:fs';
import * as path from 'node:path';
import t, { type Test } from 'tap';
import { Value } from '@sinclair/typebox/value';
import type { TSchema } from '@sinclair/typebox';
import {
  AppMetricsSchema, DeviceMetricsSchema, INFO_SCHEMAS, type DeviceInfo,
} from '../../api/info';
import { newBoxKeyPair } from '../../lib/keys';
import { sealSecret } from '../../lib/secrets';
import type { InfoKind } from '../../api/topics';
import {
  appInfo, appMetrics, configInfo, configResult, contentTreeInfo, deviceInfo, deviceMetrics, networkInstanceInfo,
  volumeInfo, volumeInfos, type DeviceInfoInputs,
} from '../../agents/zedagent/info-build';
import { parseDeviceConfig } from '../../agents/zedagent/device-config';
import { desiredValues } from '../../agents/zedagent/publish-plan';
import type { DeviceSample, FilesystemReading, HardwareSnapshot } from '../../agents/zedagent/system-driver';
import type { AppInstanceStatus, DomainMetric } from '../../pubsub/collections/apps';
import type { ErrorInfo } from '../../pubsub/collections/common';
import type { DeviceConfig, DeviceConfigStatus } from '../../pubsub/collections/config';
import { defaultConfigItems } from '../../pubsub/collections/config-items';
import type { ContentTreeStatus, VolumeStatus } from '../../pubsub/collections/volumes';
import type { DeviceNetworkStatus } from '../../pubsub/collections/network';
import { localFilesystems, storageTotalBytes } from '../../agents/zedagent/filesystems';

const APP = 'a0c1d2e3-0001-4f00-9000-000000000001';
const VOL = '7b6a7e1c-1111-4c1e-8a3d-6f1e2d3c4b01';
const TREE = 'c1a3e5f0-7a7b-4c4e-9a52-2f6e0d1b9a01';
const NET = '9e8d7c6b-0000-4a00-8000-000000000001';
const NOW = '2026-03-01T10:00:00.000Z';
const DIGEST = `sha256:${'ab'.repeat(32)}`;

const err = (error: string): ErrorInfo => ({ error, time: NOW, severity: 'error', source: 'test' });

function valid(t: Test, kind: InfoKind, value: unknown): void {
  const schema = INFO_SCHEMAS[kind] as TSchema;
  const first = Value.Errors(schema, value).First();
  t.ok(Value.Check(schema, value), `${kind} info matches its schema${first ? `: ${first.path} ${first.message}` : ''}`);
}

// The secrets a config may carry. The sealed one is sealed to a throwaway device key.
const CLEAR_ENV_SECRET = 'clear-env-Pa55word';
const SEALED_PLAINTEXT = 'sealed-api-token-0123';
const DATASTORE_PASSWORD = 'registry-Pa55word-9876';
const sealed = sealSecret(SEALED_PLAINTEXT, newBoxKeyPair().publicKey, new Uint8Array(32).fill(7));

function configWithSecrets(): DeviceConfig {
  const example = JSON.parse(fs.readFileSync(path.join(__dirname, '../../docs/examples/device-config.json'), 'utf8')) as DeviceConfig;
  example.datastores![0]!.username = 'puller';
  example.datastores![0]!.password = DATASTORE_PASSWORD;
  // The schema is moving to sealed env values (MaybeSealedString); the cast keeps this test valid either way.
  example.apps![0]!.env = { GREETING: 'hello', DB_PASSWORD: CLEAR_ENV_SECRET, API_TOKEN: sealed as unknown as string };
  example.networkInstances = [{ id: NET, name: 'default', type: 'local', subnet: '10.1.0.0/24' }];
  return example;
}

function appStatus(over: Partial<AppInstanceStatus> = {}): AppInstanceStatus {
  return {
    appId: APP, name: 'hello', version: '1.0', configVersion: '7', state: 'RUNNING', activated: true,
    restartInprogress: 'none', purgeInprogress: 'none', restartCounter: 2, purgeCounter: 1, localGeneration: 1,
    volumes: [{ volumeId: VOL, generation: 0, localGeneration: 1, state: 'CREATED_VOLUME' }],
    containerId: 'c0ffee', restarts: 3, lastExitCode: 137, bootTime: NOW, errors: [], ...over,
  };
}

function volume(over: Partial<VolumeStatus> = {}): VolumeStatus {
  return {
    volumeId: VOL, generation: 0, localGeneration: 0, name: 'hello-root', state: 'CREATED_VOLUME', kind: 'image',
    contentTreeId: TREE, readonly: false, refCount: 2, createdAt: NOW, ...over,
  };
}

function tree(over: Partial<ContentTreeStatus> = {}): ContentTreeStatus {
  return { contentTreeId: TREE, generation: 0, name: 'busybox', format: 'container', state: 'LOADED', blobs: [], refCount: 1, ...over };
}

const hardware: HardwareSnapshot = {
  hostname: 'edge-1', machineBootTime: '2026-03-01T09:00:00.000Z', missing: [], errors: [],
  hardware: { model: 'Docker Container', virtual: true, cpu: { brand: 'AMD EPYC', cores: 2, arch: 'x64' }, memoryTotalBytes: 25e9, storageTotalBytes: 270e9 },
  os: { distro: 'Debian GNU/Linux', release: '12', kernel: '6.18.44', arch: 'x64' },
};

function inputs(over: Partial<DeviceInfoInputs> = {}): DeviceInfoInputs {
  return { zedboxVersion: '0.1.0', nodeVersion: 'v20.20.2', system: hardware, startedAt: NOW, bootReason: 'zedbox-restart', restartCounter: 5, ...over };
}

const applied: DeviceConfigStatus = {
  source: 'file:/config/device-config.json', appliedVersion: '7', appliedSha256: 'aa', appliedAt: NOW, fieldErrors: [], unknownConfigItems: ['x.y'],
};
const refused: DeviceConfigStatus = {
  ...applied, rejectedSha256: 'bb', rejectedAt: NOW, error: err('config file refused (1 error): /apps/0/name: Expected string'),
  fieldErrors: [{ path: '/apps/0/name', message: 'Expected string' }],
};

t.test('appInfo: status and config together, each alone, and neither', async (t) => {
  const config = desiredValues(configWithSecrets()).AppInstanceConfig.get(APP)!;
  const both = appInfo(appStatus({ errors: [err('exited')] }), config)!;
  t.same(both, {
    id: APP, name: 'hello', version: '1.0', configVersion: '7', state: 'RUNNING', activate: true, activated: true,
    errors: [err('exited')], volumeRefs: [{ volumeId: VOL, generation: 0, state: 'CREATED_VOLUME' }],
    restartCounter: 2, purgeCounter: 1, containerRestarts: 3, lastExitCode: 137, bootTime: NOW,
  });
  valid(t, 'app', both);

  const configOnly = appInfo(undefined, config)!;
  t.same(configOnly, {
    id: APP, name: 'hello', version: '1.0', configVersion: '1', state: 'INITIAL', activate: true, errors: [],
    volumeRefs: [{ volumeId: VOL, generation: 0 }],
  }, 'before zedmanager has seen it: INITIAL, refs from the config');
  valid(t, 'app', configOnly);

  const statusOnly = appInfo(appStatus({ state: 'HALTING' }), undefined)!;
  t.equal(statusOnly.state, 'HALTING', 'removed from the config, still shutting down');
  t.equal(statusOnly.activate, undefined);
  valid(t, 'app', statusOnly);

  t.equal(appInfo(undefined, undefined), undefined, 'gone: reported deleted');
});

t.test('volumeInfo reports the newest instance of a volume', async (t) => {
  const rows: [string, VolumeStatus[], Record<string, unknown> | undefined][] = [
    ['one created volume', [volume()], { state: 'CREATED_VOLUME', generation: 0, localGeneration: 0, instances: 1, progressPercent: 100 }],
    ['a purge in progress: the new instance', [volume(), volume({ localGeneration: 1, state: 'CREATING_VOLUME', currentBytes: 25, totalBytes: 100 })],
      { state: 'CREATING_VOLUME', localGeneration: 1, instances: 2, progressPercent: 25 }],
    ['a new generation beats a higher local generation', [volume({ generation: 1, state: 'DOWNLOADING' }), volume({ localGeneration: 3 })],
      { generation: 1, localGeneration: 0, state: 'DOWNLOADING', instances: 2 }],
    ['no total known: no progress', [volume({ state: 'DOWNLOADING', currentBytes: 10 })], { progressPercent: undefined, currentBytes: 10 }],
    ['an error', [volume({ state: 'INITIAL', error: err('disk full') })], { errors: [err('disk full')] }],
    ['none left', [], undefined],
  ];
  for (const [what, list, want] of rows) {
    const info = volumeInfo(list);
    if (want === undefined) { t.equal(info, undefined, what); continue; }
    t.match(info, want, what);
    if ('progressPercent' in want && want.progressPercent === undefined) t.notOk('progressPercent' in info!, `${what}: absent`);
    valid(t, 'volume', info);
  }
  const other = '7b6a7e1c-2222-4c1e-8a3d-6f1e2d3c4b02';
  const all = volumeInfos([volume(), volume({ volumeId: other, name: 'b' }), volume({ localGeneration: 1 })]);
  t.same([...all.keys()].sort(), [VOL, other].sort(), 'keyed by volume id');
  t.equal(all.get(VOL)!.instances, 2);
});

t.test('contentTreeInfo: progress, digest, errors', async (t) => {
  const rows: [string, ContentTreeStatus, Record<string, unknown>][] = [
    ['downloading half', tree({ state: 'DOWNLOADING', currentBytes: 50, totalBytes: 100, digest: DIGEST, blobs: [{ digest: DIGEST, state: 'DOWNLOADING' }] }),
      { state: 'DOWNLOADING', progressPercent: 50, digest: DIGEST, blobCount: 1 }],
    ['loaded', tree(), { state: 'LOADED', progressPercent: 100, refCount: 1, errors: [] }],
    ['more bytes than announced stays at 100', tree({ state: 'VERIFYING', currentBytes: 120, totalBytes: 100 }), { progressPercent: 100 }],
    ['failed', tree({ state: 'INITIAL', error: err('401 from the registry') }), { errors: [err('401 from the registry')] }],
  ];
  for (const [what, status, want] of rows) {
    const info = contentTreeInfo(status);
    t.match(info, want, what);
    valid(t, 'contentTree', info);
  }
  t.notOk('progressPercent' in contentTreeInfo(tree({ state: 'RESOLVING_TAG' })), 'nothing known yet: no progress');
});

t.test('networkInstanceInfo and configInfo', async (t) => {
  const ni = networkInstanceInfo({ id: NET, name: 'default', type: 'local', subnet: '10.1.0.0/24' });
  t.same(ni, { id: NET, name: 'default', type: 'local', subnet: '10.1.0.0/24', state: 'configured', errors: [] });
  valid(t, 'networkInstance', ni);
  valid(t, 'networkInstance', networkInstanceInfo({ id: NET, name: 'sw', type: 'switch' }));

  t.same(configInfo(applied, { seq: 12, epoch: 3 }), { ...applied, seq: 12, epoch: 3 });
  t.same(configInfo(refused), refused, 'a local file: no seq');
  valid(t, 'config', configInfo(applied, { seq: 12, epoch: 3 }));
  valid(t, 'config', configInfo(refused));
});

t.test('configResult: none, applied, refused', async (t) => {
  const rows: [string, DeviceConfigStatus | undefined, string][] = [
    ['no status yet', undefined, 'none'],
    ['nothing applied, nothing refused', { source: 's', fieldErrors: [], unknownConfigItems: [] }, 'none'],
    ['applied', applied, 'applied'],
    ['refused while another runs', refused, 'refused'],
    ['refused with nothing applied', { source: 's', rejectedAt: NOW, error: err('bad'), fieldErrors: [], unknownConfigItems: [] }, 'refused'],
  ];
  for (const [what, status, want] of rows) t.equal(configResult(status), want, what);
});

t.test('deviceInfo: everything the device says about itself', async (t) => {
  const info = deviceInfo(inputs({
    configStatus: applied, configItems: { ...defaultConfigItems(), 'timer.download.retry': '30' }, configSeq: 12,
    rebootCounter: 1, shutdownCounter: 0, controllerEpoch: 3,
  }));
  const want: DeviceInfo = {
    zedboxVersion: '0.1.0', nodeVersion: 'v20.20.2', hostname: 'edge-1', machineBootTime: '2026-03-01T09:00:00.000Z', startedAt: NOW,
    bootReason: 'zedbox-restart', restartCounter: 5, hardware: hardware.hardware, os: hardware.os,
    config: { appliedVersion: '7', seq: 12, lastResult: 'applied', items: { ...defaultConfigItems(), 'timer.download.retry': '30' }, unknownItems: ['x.y'] },
    rebootCounter: 1, shutdownCounter: 0, controllerEpoch: 3,
  };
  t.same(info, want);
  valid(t, 'device', info);

  const r = deviceInfo(inputs({ configStatus: refused, configSeq: 12 }));
  t.same(r.config, {
    appliedVersion: '7', seq: 12, lastResult: 'refused', error: refused.error!.error, fieldErrors: refused.fieldErrors,
    items: defaultConfigItems(), unknownItems: ['x.y'],
  }, 'a refusal with its field errors; the items are the defaults until published');
  valid(t, 'device', r);

  const fresh = deviceInfo(inputs({ bootReason: 'first-boot', restartCounter: 1, unknownConfigItems: ['a.b'], configSeq: 4 }));
  t.same(fresh.config, { lastResult: 'none', items: defaultConfigItems(), unknownItems: ['a.b'] }, 'no seq without an applied config');
  valid(t, 'device', fresh);

  const bare: HardwareSnapshot = { hostname: 'h', missing: ['system', 'cpu'], errors: [], hardware: { cpu: { cores: 1, arch: 'arm64' }, memoryTotalBytes: 1 }, os: { kernel: '6.1', arch: 'arm64' } };
  valid(t, 'device', deviceInfo(inputs({ system: bare })));
});

t.test('deviceInfo carries nim\'s view of the ports, without the test times that change every test', async (t) => {
  const network: DeviceNetworkStatus = {
    dpcKey: 'zedagent', currentIndex: 0, state: 'success', testing: false, dns: ['10.0.0.1'], errors: ['eth1: the link is down'],
    controller: { host: '10.9.0.1', port: 1883, reachable: true, via: 'eth0', testedAt: NOW },
    ports: [
      { ifName: 'eth0', management: true, cost: 0, addressing: 'dhcp', exists: true, up: true, addresses: ['10.0.0.5/24'], gateways: ['10.0.0.1'], dns: ['10.0.0.1'], reachesController: true, testedAt: NOW, leaseExpiresAt: NOW },
      { ifName: 'eth1', management: false, cost: 0, addressing: 'static', exists: true, up: false, addresses: ['10.1.0.1/24'], gateways: [], dns: [], dhcpServer: { leases: 2, poolSize: 10 } },
    ],
  };
  const info = deviceInfo(inputs({ network }));
  t.same(info.network, {
    source: 'zedagent', state: 'success', controllerVia: 'eth0', errors: ['eth1: the link is down'],
    ports: [
      { ifName: 'eth0', management: true, up: true, addresses: ['10.0.0.5/24'], gateways: ['10.0.0.1'], dns: ['10.0.0.1'], reachesController: true },
      { ifName: 'eth1', management: false, up: false, addresses: ['10.1.0.1/24'], gateways: [], dns: [], dhcpLeases: 2 },
    ],
  });
  valid(t, 'device', info);
  const later = deviceInfo(inputs({ network: { ...network, controller: { ...network.controller!, testedAt: '2026-12-01T00:00:00Z' }, ports: network.ports.map((p) => ({ ...p, testedAt: '2026-12-01T00:00:00Z' })) } }));
  t.same(later, info, 'a new test with the same result is no new device info');
});

t.test('no secret of the config reaches any info or metric', async (t) => {
  const config = configWithSecrets();
  const desired = desiredValues(config);
  const text = JSON.stringify(config);
  t.ok(text.includes(CLEAR_ENV_SECRET) && text.includes(DATASTORE_PASSWORD) && text.includes(sealed.sealed.box), 'the config does carry them');

  // A refusal of a config that carries them, as zedagent records it.
  const bad = configWithSecrets();
  bad.datastores![0]!.url = 'ftp://nope';
  const parsed = parseDeviceConfig(JSON.stringify(bad));
  t.ok(parsed.errors.length > 0, 'refused');
  const refusal: DeviceConfigStatus = {
    ...applied, rejectedAt: NOW, error: err(`config file refused: ${parsed.errors[0]!.message}`), fieldErrors: parsed.errors,
    unknownConfigItems: parsed.unknownConfigItems,
  };

  const reports: [string, unknown][] = [];
  for (const [id, cfg] of desired.AppInstanceConfig) {
    reports.push([`app ${id} from config`, appInfo(undefined, cfg)]);
    reports.push([`app ${id} with status`, appInfo(appStatus({ appId: id }), cfg)]);
  }
  for (const ni of desired.NetworkInstanceConfig.values()) reports.push(['network instance', networkInstanceInfo(ni)]);
  reports.push(['config info', configInfo(refusal, { seq: 1, epoch: 1 })]);
  reports.push(['device info', deviceInfo(inputs({ configStatus: refusal, configItems: desired.ConfigItemValueMap.get('global')!.items }))]);
  reports.push(['app metrics', appMetrics({ appId: APP, time: NOW, cpuPercent: 1, cpuTotalNanos: 1, memoryBytes: 1, memoryLimitBytes: 1 })]);

  const secrets = [CLEAR_ENV_SECRET, SEALED_PLAINTEXT, DATASTORE_PASSWORD, sealed.sealed.box, sealed.sealed.epk, sealed.sealed.nonce];
  for (const [what, value] of reports) {
    const json = JSON.stringify(value);
    t.ok(json.length > 2, `${what} is not empty`);
    t.same(secrets.filter((s) => json.includes(s)), [], `${what} carries no secret`);
    t.notOk(json.includes('"env"') || json.includes('DB_PASSWORD'), `${what} has no env at all`);
  }
  t.equal(reports.length, 2 * desired.AppInstanceConfig.size + desired.NetworkInstanceConfig.size + 3, 'every kind was checked');
});

t.test('appMetrics maps a DomainMetric', async (t) => {
  const m: DomainMetric = { appId: APP, time: NOW, cpuPercent: 150.5, cpuTotalNanos: 9e9, memoryBytes: 1048576, memoryLimitBytes: 33554432 };
  const out = appMetrics(m, 'hello');
  t.same(out, { appId: APP, name: 'hello', time: NOW, cpuPercent: 150.5, cpuTotalNanos: 9e9, memoryUsedBytes: 1048576, memoryLimitBytes: 33554432 });
  t.ok(Value.Check(AppMetricsSchema, out));
  t.notOk('name' in appMetrics(m), 'no name when none is given');
});

const fsRows: FilesystemReading[] = [
  { source: '/dev/vda1', type: 'ext4', mount: '/', sizeBytes: 1000, usedBytes: 250, availableBytes: 700 },
  { source: '/dev/vda1', type: 'ext4', mount: '/persist', sizeBytes: 1000, usedBytes: 250, availableBytes: 700 },
  { source: '/dev/vdb', type: 'ext4', mount: '/data', sizeBytes: 500, usedBytes: 0 },
  { source: 'tmpfs', type: 'tmpfs', mount: '/run', sizeBytes: 100, usedBytes: 1 },
  { source: 'tmpfs', type: 'tmpfs', mount: '/dev/shm', sizeBytes: 64, usedBytes: 0 },
  { source: 'overlay', type: 'overlay', mount: '/var/lib/docker/overlay2/abc/merged', sizeBytes: 1000, usedBytes: 250 },
  { source: 'overlay', type: 'overlay', mount: '/mnt/ovl', sizeBytes: 1000, usedBytes: 250 },
];

t.test('filesystems: no container roots, a disk mounted twice counted once', async (t) => {
  t.same(localFilesystems(fsRows).map((f) => f.mount), ['/', '/data', '/dev/shm', '/run']);
  t.equal(storageTotalBytes(fsRows), 1500, 'vda1 once, plus vdb');
  t.equal(storageTotalBytes([fsRows[3]!]), undefined, 'no block device: unknown');
});

t.test('deviceMetrics from a sample', async (t) => {
  const sample: DeviceSample = {
    time: NOW, uptimeSeconds: 3600, cpuPercent: 12.3456, loadAverage: [0.5, 0.25, 1 / 3],
    memory: { totalBytes: 1000, availableBytes: 600 }, filesystems: fsRows,
    network: [
      { name: 'eth0', operstate: 'up', rxBytes: 10, txBytes: 20, rxPackets: 1, txPackets: 2, rxErrors: 0, txErrors: 0, rxDrops: 3, txDrops: 0 },
      { name: 'docker0', operstate: 'down', rxBytes: 0, txBytes: 0, rxPackets: 0, txPackets: 0, rxErrors: 0, txErrors: 0, rxDrops: 0, txDrops: 0 },
      { name: 'lo', operstate: 'unknown', rxBytes: 5, txBytes: 5, rxPackets: 1, txPackets: 1, rxErrors: 0, txErrors: 0, rxDrops: 0, txDrops: 0 },
    ],
    missing: [], errors: [],
  };
  const m = deviceMetrics(sample);
  t.ok(Value.Check(DeviceMetricsSchema, m), 'matches the schema');
  t.equal(m.cpuPercent, 12.35);
  t.same(m.loadAverage, { load1: 0.5, load5: 0.25, load15: 0.33 });
  t.same([m.memoryTotalBytes, m.memoryUsedBytes, m.memoryAvailableBytes], [1000, 400, 600], 'used is total minus available');
  t.same(m.filesystems!.map((f) => [f.mount, f.usedPercent]), [['/', 25], ['/data', 0], ['/dev/shm', 0], ['/run', 1]]);
  t.same(m.network!.map((n) => [n.name, n.up]), [['docker0', false], ['eth0', true], ['lo', undefined]], 'sorted; lo neither up nor down');
  t.equal(m.network![1]!.rxDrops, 3);
  t.equal(m.missing, undefined, 'nothing missing');

  const poor = deviceMetrics({ time: NOW, cpuPercent: Number.NaN, missing: ['memory', 'filesystems'], errors: ['mem timed out'] });
  t.same(poor, { missing: ['cpu', 'filesystems', 'memory'] }, 'what failed is absent and named');
  t.ok(Value.Check(DeviceMetricsSchema, poor));
  t.equal(deviceMetrics({ ...sample, cpuPercent: 100.0001 }).cpuPercent, 100, 'rounding noise above 100 is clamped');
});

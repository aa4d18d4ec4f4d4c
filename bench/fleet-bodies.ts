// What a simulated device says, shaped like zedagent's real messages (api/info.ts,
// api/messages.ts) so the controller's schema checks pass and cost what they
// would in use: one app's info (~550 B of body), metrics of the device and that
// app, and the online/offline status. Pure: the caller gives times and counters.
import type { AppInfo, AppMetrics, DeviceMetrics } from '../api/info';
import type { InfoBody, MetricsBody, StatusBody } from '../api/messages';

export interface SimIdentity {
  deviceId: string;
  serial: string;
  /** The device's one app and its volume (random UUIDs made with the identity). */
  appId: string;
  volumeId: string;
}

/** The app's info after `changes` changes: a restart each time, as a crash-looping app would report. */
export function appInfoBody(d: SimIdentity, seq: number, changes: number, now: Date): InfoBody {
  const value: AppInfo = {
    id: d.appId,
    name: `gateway-${d.serial}`,
    version: '2.4.1',
    configVersion: 'cfg-00000017',
    state: 'RUNNING',
    activate: true,
    activated: true,
    errors: [],
    volumeRefs: [{ volumeId: d.volumeId, generation: 1, mountDir: '/data', state: 'CREATED_VOLUME' }],
    restartCounter: 0,
    containerRestarts: changes,
    lastExitCode: changes ? 137 : 0,
    bootTime: now.toISOString(),
  };
  return { deviceId: d.deviceId, kind: 'app', id: d.appId, seq, time: now.toISOString(), value };
}

export function metricsBody(d: SimIdentity, seq: number, intervalSeconds: number, now: Date): MetricsBody {
  const t = now.getTime() / 1000;
  const wave = (Math.sin(t / 60 + d.deviceId.charCodeAt(0)) + 1) / 2;
  const device: DeviceMetrics = {
    uptimeSeconds: Math.round(t % 864_000),
    cpuPercent: Math.round(wave * 4000) / 100,
    loadAverage: { load1: Math.round(wave * 200) / 100, load5: 0.8, load15: 0.6 },
    memoryTotalBytes: 4_102_062_080,
    memoryUsedBytes: 1_200_000_000 + Math.round(wave * 1e8),
    memoryAvailableBytes: 2_900_000_000 - Math.round(wave * 1e8),
    filesystems: [
      { mount: '/', source: '/dev/mmcblk0p2', type: 'ext4', sizeBytes: 31_000_000_000, usedBytes: 9_400_000_000, availableBytes: 20_000_000_000, usedPercent: 30.3 },
      { mount: '/persist', source: '/dev/mmcblk0p3', type: 'ext4', sizeBytes: 16_000_000_000, usedBytes: 2_100_000_000, availableBytes: 13_100_000_000, usedPercent: 13.1 },
    ],
    network: [{
      name: 'eth0', up: true, rxBytes: Math.round(t * 1000), txBytes: Math.round(t * 800), rxPackets: Math.round(t * 9), txPackets: Math.round(t * 7),
      rxErrors: 0, txErrors: 0, rxDrops: 3, txDrops: 0,
    }],
  };
  const app: AppMetrics = {
    appId: d.appId, name: `gateway-${d.serial}`, time: now.toISOString(),
    cpuPercent: Math.round(wave * 1500) / 100, cpuTotalNanos: Math.round(t * 1e7), memoryUsedBytes: 84_000_000, memoryLimitBytes: 268_435_456,
  };
  return { deviceId: d.deviceId, seq, time: now.toISOString(), intervalSeconds, device, apps: [app] };
}

export function statusBody(d: SimIdentity, state: 'online' | 'offline', bootId: string, now: Date): StatusBody {
  return { deviceId: d.deviceId, state, ...(state === 'offline' ? { reason: 'will' } : {}), bootId, time: now.toISOString() };
}

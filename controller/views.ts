// What `zedctl devices`, `show` and `follow` print: a device's registry record,
// its latest status and info from the state dir, as tables, JSON or one line
// per event. gatherDevice reads; everything else here is pure formatting.
import { keyId } from '../lib/keys';
import type { AppInfo, ConfigInfo, ContentTreeInfo, DeviceInfo, DeviceNetworkInfo, NetworkInstanceInfo, VolumeInfo } from '../api/info';
import type { InfoBody, MetricsBody, StatusBody } from '../api/messages';
import type { DeviceRecord } from './onboarding';
import { StateDir, type EventLine, type StoredInfo } from './state-dir';

export interface DeviceView {
  record: DeviceRecord;
  status?: StatusBody & { receivedAt: string };
  lastSeen?: string;
  /** The last config sent (from configs/<uuid>.json). */
  sent?: { seq: number; epoch: number; issuedAt: string; sentAt: string; sourceSha256: string };
  device?: DeviceInfo;
  config?: ConfigInfo;
  apps: AppInfo[];
  volumes: VolumeInfo[];
  contentTrees: ContentTreeInfo[];
  networkInstances: NetworkInstanceInfo[];
}

export interface DeviceRow {
  serial: string;
  state: DeviceRecord['state'];
  deviceId?: string;
  online?: 'online' | 'offline';
  lastSeen?: string;
  configSeqSent?: number;
  configSeqApplied?: number;
  apps: number;
  running: number;
}

export function gatherDevice(state: StateDir, record: DeviceRecord): DeviceView {
  const view: DeviceView = { record, apps: [], volumes: [], contentTrees: [], networkInstances: [] };
  const uuid = record.deviceId;
  if (!uuid) return view;
  const status = state.readStatus(uuid);
  if (status) view.status = { ...status.body, receivedAt: status.receivedAt };
  view.lastSeen = state.lastSeen(uuid)?.toISOString();
  const sent = state.readConfig(uuid);
  if (sent) view.sent = { seq: sent.seq, epoch: sent.epoch, issuedAt: sent.issuedAt, sentAt: sent.sentAt, sourceSha256: sent.sourceSha256 };
  const live = (items: StoredInfo[] | undefined): unknown[] => (items ?? []).filter((i) => !i.body.deleted).map((i) => i.body.value);
  const info = state.listInfo(uuid);
  view.device = live(info.get('device'))[0] as DeviceInfo | undefined;
  view.config = live(info.get('config'))[0] as ConfigInfo | undefined;
  view.apps = live(info.get('app')) as AppInfo[];
  view.volumes = live(info.get('volume')) as VolumeInfo[];
  view.contentTrees = live(info.get('contentTree')) as ContentTreeInfo[];
  view.networkInstances = live(info.get('networkInstance')) as NetworkInstanceInfo[];
  return view;
}

export function deviceRow(v: DeviceView): DeviceRow {
  const applied = v.config?.seq ?? v.device?.config.seq;
  return {
    serial: v.record.serial,
    state: v.record.state,
    ...(v.record.deviceId ? { deviceId: v.record.deviceId } : {}),
    ...(v.status ? { online: v.status.state } : {}),
    ...(v.lastSeen ? { lastSeen: v.lastSeen } : {}),
    ...(v.sent ? { configSeqSent: v.sent.seq } : {}),
    ...(applied !== undefined ? { configSeqApplied: applied } : {}),
    apps: v.apps.length,
    running: v.apps.filter((a) => a.state === 'RUNNING').length,
  };
}

export function devicesTable(rows: DeviceRow[]): string {
  if (rows.length === 0) return 'no devices: add one with `zedctl device add SERIAL`\n';
  const head = ['SERIAL', 'STATE', 'DEVICE ID', 'LINK', 'LAST SEEN', 'CONFIG', 'APPS'];
  const body = rows.map((r) => [
    r.serial, r.state, r.deviceId ?? '-', r.online ?? '-', r.lastSeen ?? '-',
    r.configSeqSent === undefined && r.configSeqApplied === undefined ? '-' : `${r.configSeqApplied ?? '-'}/${r.configSeqSent ?? '-'}`,
    r.apps ? `${r.running}/${r.apps} running` : '-',
  ]);
  return table([head, ...body]) + '(CONFIG: seq applied by the device / seq last sent)\n';
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n') + '\n';
}

const errorsOf = (errs: { error: string }[] | undefined, indent: string): string[] => (errs ?? []).map((e) => `${indent}error: ${e.error}`);

/** `zedctl show`: everything known about one device, for a person. */
export function showText(v: DeviceView): string {
  const r = v.record;
  const lines: string[] = [`device ${r.serial}${r.deviceId ? ` (${r.deviceId})` : ''}: ${r.state}`];
  lines.push(`  ${r.state === 'pending' ? 'first asked' : 'registered'} ${r.createdAt}${r.onboardedAt ? `, onboarded ${r.onboardedAt}` : ''}${r.lastRequestAt ? `, last onboarding request ${r.lastRequestAt}` : ''}`);
  if (r.lastRefusal) lines.push(`  last refusal: ${r.lastRefusal.code} at ${r.lastRefusal.time}: ${r.lastRefusal.error}`);
  if (r.signPublicKey) lines.push(`  signing key ${keyId(r.signPublicKey)}${r.zedboxVersion ? `, zedbox ${r.zedboxVersion}` : ''}`);
  if (v.status) lines.push(`  link: ${v.status.state}${v.status.reason ? ` (${v.status.reason})` : ''} since ${v.status.time}, boot ${v.status.bootId}`);
  if (v.lastSeen) lines.push(`  last seen ${v.lastSeen}`);
  if (v.device) {
    const d = v.device;
    lines.push(`  ${`host ${d.hostname}: zedbox ${d.zedboxVersion}, ${d.os.distro ?? 'OS'} ${d.os.release ?? ''} kernel ${d.os.kernel} ${d.os.arch}`.replace(/ +/g, ' ')}`);
    lines.push(`  started ${d.startedAt} (${d.bootReason}, start #${d.restartCounter}); ${d.hardware.cpu.cores} cores, ${mib(d.hardware.memoryTotalBytes)} memory`);
    if (d.network) lines.push(...networkLines(d.network));
  }
  lines.push(...configLines(v));
  lines.push(`apps (${v.apps.length}, ${v.apps.filter((a) => a.state === 'RUNNING').length} RUNNING):`);
  for (const a of v.apps) {
    lines.push(`  ${a.name}  ${a.state}  ${a.id}${a.version ? `  version ${a.version}` : ''}${a.containerRestarts ? `  restarts ${a.containerRestarts}` : ''}`);
    lines.push(...errorsOf(a.errors, '    '));
  }
  lines.push(`volumes (${v.volumes.length}):`);
  for (const vol of v.volumes) {
    lines.push(`  ${vol.name ?? vol.id}  ${vol.state}  ${vol.id}#${vol.generation}${progress(vol)}`);
    lines.push(...errorsOf(vol.errors, '    '));
  }
  lines.push(`content trees (${v.contentTrees.length}):`);
  for (const ct of v.contentTrees) {
    lines.push(`  ${ct.name ?? ct.id}  ${ct.state}  ${ct.id}${ct.digest ? `  ${ct.digest}` : ''}${progress(ct)}`);
    lines.push(...errorsOf(ct.errors, '    '));
  }
  if (v.networkInstances.length) {
    lines.push(`network instances (${v.networkInstances.length}):`);
    for (const ni of v.networkInstances) {
      lines.push(`  ${ni.name}  ${ni.state}  ${ni.id}${ni.subnet ? `  ${ni.subnet}` : ''}`);
      lines.push(...errorsOf(ni.errors, '    '));
    }
  }
  return lines.join('\n') + '\n';
}

function configLines(v: DeviceView): string[] {
  const out: string[] = [];
  out.push(v.sent ? `config: sent seq ${v.sent.seq} (epoch ${v.sent.epoch}) at ${v.sent.sentAt}` : 'config: none sent');
  const c = v.config;
  if (c) {
    out.push(c.appliedVersion !== undefined
      ? `  applied version ${c.appliedVersion}${c.seq !== undefined ? ` seq ${c.seq}` : ''}${c.appliedAt ? ` at ${c.appliedAt}` : ''} (from ${c.source})`
      : `  nothing applied yet (from ${c.source})`);
    if (c.rejectedAt) out.push(`  refused a config at ${c.rejectedAt}${c.error ? `: ${c.error.error}` : ''}`);
    for (const e of c.fieldErrors) out.push(`    ${e.path || '/'}: ${e.message}`);
    if (c.unknownConfigItems.length) out.push(`  unknown config items: ${c.unknownConfigItems.join(', ')}`);
  } else if (v.device) {
    const s = v.device.config;
    out.push(`  ${s.lastResult}${s.appliedVersion ? `, version ${s.appliedVersion}` : ''}${s.seq !== undefined ? ` seq ${s.seq}` : ''}${s.error ? `: ${s.error}` : ''}`);
    for (const e of s.fieldErrors ?? []) out.push(`    ${e.path || '/'}: ${e.message}`);
  }
  return out;
}

function progress(o: { progressPercent?: number; currentBytes?: number; totalBytes?: number }): string {
  if (o.progressPercent !== undefined && o.progressPercent < 100) return `  ${o.progressPercent.toFixed(0)}%`;
  return o.totalBytes ? `  ${mib(o.totalBytes)}` : '';
}

function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(bytes < 10 * 1048576 ? 1 : 0)} MiB`;
}

/** One line of `zedctl follow`; undefined for what is not shown (metrics without --metrics). */
export function eventText(ev: EventLine, metrics: boolean): string | undefined {
  if (ev.type === 'status') {
    const s = ev.body as StatusBody;
    return `${ev.receivedAt}  status  ${s.state}${s.reason ? ` (${s.reason})` : ''}  boot ${s.bootId}`;
  }
  if (ev.type === 'metrics') {
    if (!metrics) return undefined;
    const m = ev.body as MetricsBody;
    const d = m.device as { cpuPercent?: number; memoryUsedBytes?: number; memoryTotalBytes?: number };
    const cpu = d.cpuPercent !== undefined ? ` cpu ${d.cpuPercent.toFixed(1)}%` : '';
    const mem = d.memoryUsedBytes !== undefined ? ` memory ${mib(d.memoryUsedBytes)}${d.memoryTotalBytes ? `/${mib(d.memoryTotalBytes)}` : ''}` : '';
    const apps = (m.apps as { name?: string; appId: string; cpuPercent: number; memoryUsedBytes: number }[])
      .map((a) => ` ${a.name ?? a.appId.slice(0, 8)}=${a.cpuPercent.toFixed(1)}%/${mib(a.memoryUsedBytes)}`).join('');
    return `${ev.receivedAt}  metrics${cpu}${mem}${apps ? ` apps:${apps}` : ''}`;
  }
  const i = ev.body as InfoBody;
  return `${ev.receivedAt}  ${i.kind}/${i.id}  seq ${i.seq}  ${i.deleted ? 'deleted' : infoSummary(i)}`;
}

function infoSummary(i: InfoBody): string {
  const v = i.value as Record<string, unknown> | undefined;
  if (!v) return '';
  if (i.kind === 'device') {
    const d = v as unknown as DeviceInfo;
    return `${d.hostname} zedbox ${d.zedboxVersion}, ${d.bootReason}; config ${d.config.lastResult}${d.config.seq !== undefined ? ` seq ${d.config.seq}` : ''}`;
  }
  if (i.kind === 'config') {
    const c = v as unknown as ConfigInfo;
    const refused = c.rejectedAt ? `; refused at ${c.rejectedAt}${c.error ? `: ${c.error.error}` : ''} (${c.fieldErrors.length} field errors)` : '';
    return `applied ${c.appliedVersion ?? '-'}${c.seq !== undefined ? ` seq ${c.seq}` : ''}${refused}`;
  }
  const o = v as { name?: string; state?: string; errors?: { error: string }[]; progressPercent?: number };
  const err = o.errors?.[0] ? `  error: ${o.errors[0].error}` : '';
  return `${o.name ?? ''} ${o.state ?? ''}${o.progressPercent !== undefined && o.progressPercent < 100 ? ` ${o.progressPercent.toFixed(0)}%` : ''}${err}`.trim();
}

function networkLines(n: DeviceNetworkInfo): string[] {
  const how = n.source === 'host' ? 'the host\'s own (no port configuration)' : `port configuration from ${n.source}`;
  const lines = [`  network: ${how}, ${n.state}${n.controllerVia ? `; reaches the controller via ${n.controllerVia}` : ''}`];
  for (const p of n.ports) {
    const what = [p.management ? 'management' : 'local', p.up ? 'up' : 'down', p.addresses.join(' ') || 'no address'];
    if (p.gateways.length) what.push(`gw ${p.gateways.join(' ')}`);
    if (p.dhcpLeases !== undefined) what.push(`serves DHCP: ${p.dhcpLeases} leases`);
    if (p.error) what.push(`error: ${p.error}`);
    lines.push(`    ${p.ifName}  ${what.join(', ')}`);
  }
  for (const e of n.errors) lines.push(`    error: ${e}`);
  return lines;
}

// diag's screen as text: who the device is, its ports, its controller link, its
// apps, its agents and its logs, then what is wrong. Pure: the same state gives
// the same text, so the console and <run>/diag.txt always agree.
import { SW_STATES } from '../../pubsub/collections';
import { table } from '../ipcmonitor/format';
import { diagnose } from './problems';
import type { DiagState } from './state';

export function renderDiag(s: DiagState): string {
  const parts = [
    `zedbox diag  ${new Date(s.now).toISOString()}  (${s.reason})  run dir ${s.runDir}`,
    '',
    ...deviceLines(s),
    '',
    ...networkLines(s),
    '',
    ...appLines(s),
    '',
    'AGENTS',
    indent(agentTable(s)),
    ...logLines(s),
    '',
    ...problemLines(s),
  ];
  return parts.join('\n') + '\n';
}

function deviceLines(s: DiagState): string[] {
  const id = s.identity;
  const who = id.serial
    ? `serial ${id.serial}  ${id.deviceId ? `uuid ${id.deviceId} (onboarded ${id.onboardedAt ?? '?'})` : 'not onboarded yet'}`
    : 'no controller: config from a local file';
  const led = s.led ? `LED ${s.led.code}: ${s.led.meaning}${s.led.reason && s.led.reason !== s.led.meaning ? ` (${s.led.reason})` : ''}` : 'LED: no code yet';
  const c = s.config;
  const config = !c ? 'no config status yet'
    : c.appliedVersion ? `version ${c.appliedVersion}${c.appliedSeq !== undefined ? ` (seq ${c.appliedSeq})` : ''} applied ${c.appliedAt ?? ''}${c.error ? '; the newest was refused' : ''}`
    : c.error ? 'none applied; the last was refused' : 'none received yet';
  return [
    `DEVICE      ${who}`,
    `CONTROLLER  ${id.broker ?? '-'}  ${led}`,
    `CONFIG      ${config}  (from ${c?.source ?? '-'})`,
  ];
}

function networkLines(s: DiagState): string[] {
  const net = s.net;
  const probe = s.probe ? [`  diag's probe of ${s.probe.target}: ${s.probe.ok ? 'ok' : 'failed'}: ${s.probe.detail}`] : [];
  if (!net) return ['NETWORK     no status from nim yet', ...probe];
  const what = net.dpcKey === 'host' ? 'the host\'s own network (no port configuration: nim only observes)'
    : `configuration ${net.currentIndex} from ${net.dpcKey}${s.dpcList ? ` of ${s.dpcList.list.length}` : ''}`;
  const rows = [['PORT', 'MGMT', 'LINK', 'ADDRESSES', 'GATEWAY', 'DNS', 'CONTROLLER']];
  for (const p of net.ports) {
    const link = !p.exists ? 'missing' : p.up ? 'up' : 'down';
    const reach = p.reachesController === undefined ? '-' : p.reachesController ? 'reached' : `no${p.error ? `: ${p.error}` : ''}`;
    const dhcp = p.dhcpServer ? `  (serves DHCP: ${p.dhcpServer.leases}/${p.dhcpServer.poolSize} leased)` : '';
    rows.push([p.ifName, p.management ? 'yes' : 'no', link, p.addresses.join(' ') || '-', p.gateways.join(' ') || '-', p.dns.join(' ') || '-', reach + dhcp]);
  }
  const c = net.controller;
  const ctl = c ? `controller broker ${c.host}:${c.port} ${c.reachable ? `reachable${c.via ? ` via ${c.via}` : ''}` : `NOT reachable${c.error ? `: ${c.error}` : ''}`}${c.testedAt ? ` (tested ${c.testedAt})` : ''}`
    : 'no controller to test';
  return [
    `NETWORK     ${what}; state ${net.state}${net.testing ? ' (testing)' : ''}`,
    indent(table(rows)).trimEnd(),
    `  ${ctl}`,
    ...probe,
    ...(net.dns.length ? [`  name servers ${net.dns.join(', ')}`] : []),
  ];
}

function appLines(s: DiagState): string[] {
  if (s.apps.length === 0) return ['APPS        none'];
  const byState = new Map<string, number>();
  for (const a of s.apps) byState.set(a.state, (byState.get(a.state) ?? 0) + 1);
  const summary = SW_STATES.filter((st) => byState.has(st)).map((st) => `${byState.get(st)} ${st}`).join(', ');
  const rows = [['NAME', 'STATE', 'RESTARTS', 'ERROR']];
  for (const a of [...s.apps].sort((x, y) => x.name.localeCompare(y.name))) {
    rows.push([a.name, a.state, String(a.restarts), a.error?.error ?? '']);
  }
  return [`APPS        ${summary}`, indent(table(rows)).trimEnd()];
}

function agentTable(s: DiagState): string {
  const rows = [['AGENT', 'STATE', 'MODE', 'PID', 'ALIVE', 'RESTARTS', 'LAST ERROR']];
  for (const a of s.agents) {
    const alive = a.touchAgeMs === undefined ? 'never' : `${Math.round(a.touchAgeMs / 1000)}s ago`;
    const st = a.status;
    if (!st) rows.push([a.name, 'not running', '-', '-', alive, '-', '']);
    else rows.push([a.name, st.state, st.mode, String(st.pid), alive, String(st.restarts), st.lastError ?? '']);
  }
  return table(rows).trimEnd();
}

function logLines(s: DiagState): string[] {
  const l = s.logs;
  if (!l) return [];
  const mib = (b: number): string => `${(b / 1048576).toFixed(1)} MiB`;
  return ['', `LOGS        ${l.queuedBatches} batches queued (${mib(l.queuedBytes)} of ${mib(l.quotaBytes)}), ${l.sentLines} lines sent in ${l.sentBatches} batches, ${l.droppedLines} dropped, ${l.filteredLines} below the remote level${l.lastAckAt ? `; last stored by the controller ${l.lastAckAt}` : ''}`];
}

function problemLines(s: DiagState): string[] {
  const problems = diagnose(s);
  if (problems.length === 0) return ['Nothing is wrong.'];
  return ['What is wrong:', ...problems.map((p) => `  ${p.level}: ${p.text}`)];
}

function indent(text: string): string {
  return text.split('\n').map((l) => (l ? `  ${l}` : l)).join('\n');
}

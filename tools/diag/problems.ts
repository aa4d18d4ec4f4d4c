// What is wrong, in plain words, with what to check: the part of diag's screen a
// person reads first. Most serious first: an agent that is down explains much of
// the rest, then the network, the controller, the config, the apps, the logs. Pure.
import { isUsableAddress, type NetworkPortStatus } from '../../pubsub/collections';
import { STALE_TOUCH_MS, type DiagState } from './state';

export interface Problem {
  level: 'ERROR' | 'WARNING';
  text: string;
}

export function diagnose(s: DiagState): Problem[] {
  return [...agentProblems(s), ...networkProblems(s), ...controllerProblems(s), ...configProblems(s), ...appProblems(s), ...logProblems(s)];
}

function agentProblems(s: DiagState): Problem[] {
  const out: Problem[] = [];
  if (s.agents.length > 0 && s.agents.every((a) => !a.status)) {
    return [{ level: 'ERROR', text: `zedbox is not running: no agent is on the bus under ${s.runDir}. Start it (scripts/device-steps.sh, or zedbox with --run-dir ${s.runDir})` }];
  }
  for (const a of s.agents) {
    const st = a.status;
    if (!st) {
      out.push({ level: 'ERROR', text: `${a.name} is not on the bus: start zedbox (or ${a.name} alone) with --run-dir ${s.runDir}` });
    } else if (st.state === 'failed') {
      out.push({ level: 'ERROR', text: `${a.name} crashed ${st.crashes} times and was stopped: ${st.lastError ?? 'no error recorded'}. Its lines in the log say why; restart zedbox once it is fixed` });
    } else if (st.state === 'backoff') {
      out.push({ level: 'WARNING', text: `${a.name} crashed and restarts at ${st.nextRestartAt}: ${st.lastError ?? ''}` });
    } else if (a.touchAgeMs !== undefined && a.touchAgeMs > STALE_TOUCH_MS) {
      out.push({ level: 'ERROR', text: `${a.name} has not proved liveness for ${Math.round(a.touchAgeMs / 1000)} s: its process may be stuck` });
    }
  }
  return out;
}

function networkProblems(s: DiagState): Problem[] {
  const net = s.net;
  if (!net) return [];
  const out: Problem[] = [];
  const mgmt = net.ports.filter((p) => p.management);
  if (mgmt.length === 0) {
    out.push({ level: 'ERROR', text: 'no management port: nothing connects this device to its controller. Check the port configuration (networkPorts in the config, or <config>/DevicePortConfig/)' });
  }
  for (const p of mgmt) {
    const why = portProblem(p);
    if (why) out.push({ level: 'ERROR', text: `${p.ifName}: ${why}` });
  }
  for (const p of net.ports.filter((x) => x.dhcpServer?.error)) {
    out.push({ level: 'ERROR', text: `${p.ifName}: the DHCP server for the local network fails: ${p.dhcpServer!.error}` });
  }
  const best = s.dpcList?.list[0];
  if (net.currentIndex > 0 && best) {
    out.push({ level: 'WARNING', text: `using a fallback port configuration (${net.dpcKey}); the preferred one (${best.key}) failed: ${best.lastError ?? 'no reason recorded'}. nim tries it again later` });
  }
  return out;
}

function portProblem(p: NetworkPortStatus): string | undefined {
  if (!p.exists) return 'the interface does not exist. Check the name in the port configuration and that its driver is loaded';
  if (!p.up) return 'the link is down. Check the cable and the switch port';
  if (!p.addresses.some(isUsableAddress)) {
    const dhcp = p.addressing === 'dhcp' ? ': no DHCP server answered. Check that one serves this network' : '';
    return `no usable address${dhcp}${p.error ? ` (${p.error})` : ''}`;
  }
  if (p.error) return p.error;
  return undefined;
}

const LED_ADVICE: Readonly<Record<number, (s: DiagState) => string>> = {
  10: (s) => `onboarding failed: ${s.link?.reason ?? ''}`,
  15: () => 'the controller\'s signature on the config does not verify. Check that controllerPublicKey in <config>/controller.json is the controller\'s key',
  17: (s) => `onboarding refused: serial ${s.identity.serial ?? '?'} is onboarded with other keys (were this device's keys under <persist>/certs replaced?). The operator can run \`zedctl device remove ${s.identity.serial ?? 'SERIAL'}\` and add it again`,
  18: (s) => `onboarding refused: the controller does not know serial ${s.identity.serial ?? '?'}. The operator must run \`zedctl device add ${s.identity.serial ?? 'SERIAL'}\` (or \`zedctl device allow\` for a pending one)`,
};

function controllerProblems(s: DiagState): Problem[] {
  const out: Problem[] = [];
  if (s.identity.error) out.push({ level: 'ERROR', text: s.identity.error });
  const code = s.led?.code;
  if (code !== undefined && LED_ADVICE[code]) out.push({ level: 'ERROR', text: LED_ADVICE[code]!(s) });
  const c = s.net?.controller;
  if (c && !c.reachable) {
    const probe = s.probe ? `; diag's own probe ${s.probe.ok ? 'reached it' : 'failed too'}: ${s.probe.detail}` : '';
    out.push({ level: 'ERROR', text: `the controller's broker ${c.host}:${c.port} cannot be reached${c.error ? `: ${c.error}` : ''}${probe}. Check the gateway and any firewall between the device and the broker` });
  } else if (s.probe && !s.probe.ok && !c) {
    out.push({ level: 'ERROR', text: `diag cannot reach the controller's broker ${s.probe.target}: ${s.probe.detail}` });
  }
  if (code === 2 && !(c && !c.reachable) && s.identity.broker) {
    out.push({ level: 'WARNING', text: `still connecting to the controller at ${s.identity.broker}: ${s.link?.reason ?? ''}` });
  }
  return out;
}

function configProblems(s: DiagState): Problem[] {
  const c = s.config;
  if (!c?.error) return [];
  const fields = c.fieldErrors.slice(0, 3).map((f) => `${f.path} ${f.message}`).join('; ');
  const running = c.appliedVersion ? `; version ${c.appliedVersion} keeps running` : '';
  return [{ level: c.appliedVersion ? 'WARNING' : 'ERROR', text: `the last config was refused: ${c.error.error}${fields ? ` (${fields})` : ''}${running}` }];
}

function appProblems(s: DiagState): Problem[] {
  return s.apps.filter((a) => a.error).map((a) => ({
    level: a.error!.severity === 'error' || a.state === 'BROKEN' ? 'ERROR' as const : 'WARNING' as const,
    text: `app ${a.name}: ${a.error!.error}${a.error!.retryCondition ? ` (${a.error!.retryCondition})` : ''}`,
  }));
}

function logProblems(s: DiagState): Problem[] {
  const l = s.logs;
  if (!l) return [];
  const out: Problem[] = [];
  if (l.droppedLines > 0) out.push({ level: 'WARNING', text: `${l.droppedLines} log lines were dropped on the device (the queue was full while the controller was away)` });
  if (l.error) out.push({ level: 'ERROR', text: `logmanager: ${l.error}` });
  return out;
}

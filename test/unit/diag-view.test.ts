// diag's screen for the states a person at the device meets: what it shows and
// what it says is wrong, with what to check.
import t from 'tap';
import { renderDiag } from '../../tools/diag/view';
import type { DiagState } from '../../tools/diag/state';
import { AGENT_NAMES } from '../../pubsub/owners';
import type { AgentStatus, AppInstanceStatus, DeviceNetworkStatus, NetworkPortStatus } from '../../pubsub/collections';

const NOW = Date.parse('2026-11-23T10:00:00Z');
const UUID = '0b6f6d1e-8a55-4c1e-9a51-3f2d7b9c1a00';

function agent(name: string): AgentStatus {
  return { agent: name, pid: 4242, mode: 'all', version: '0.1.0', state: 'running', startedAt: '', aliveAt: '', crashes: 0, restarts: 0 };
}
function port(p: Partial<NetworkPortStatus> = {}): NetworkPortStatus {
  return { ifName: 'eth0', management: true, cost: 0, addressing: 'dhcp', exists: true, up: true, addresses: ['10.0.0.5/24'], gateways: ['10.0.0.1'], dns: ['10.0.0.1'], reachesController: true, ...p };
}
function net(p: Partial<DeviceNetworkStatus> = {}): DeviceNetworkStatus {
  return {
    dpcKey: 'zedagent', currentIndex: 0, state: 'success', testing: false, ports: [port()], dns: ['10.0.0.1'], errors: [],
    controller: { host: '10.9.0.1', port: 1883, reachable: true, via: 'eth0' }, ...p,
  };
}
function app(name: string, p: Partial<AppInstanceStatus> = {}): AppInstanceStatus {
  return {
    appId: '11111111-2222-4333-8444-555555555555', name, configVersion: '1', state: 'RUNNING', activated: true,
    restartInprogress: 'none', purgeInprogress: 'none', localGeneration: 0, volumes: [], restarts: 0, errors: [], ...p,
  };
}
function state(p: Partial<DiagState> = {}): DiagState {
  return {
    now: NOW, runDir: '/run/zedbox', reason: 'first',
    identity: { serial: 'demo-1', broker: 'mqtt://10.9.0.1:1883', deviceId: UUID, onboardedAt: '2026-11-23T09:00:00Z' },
    link: { counter: 4, reason: 'config applied' },
    led: { code: 4, meaning: 'connected and onboarded', reason: 'config applied' },
    config: { source: 'controller', appliedVersion: '3', appliedSeq: 7, appliedAt: '2026-11-23T09:01:00Z', fieldErrors: [], unknownConfigItems: [] },
    net: net(), apps: [app('hello')], agents: AGENT_NAMES.map((name) => ({ name, status: agent(name), touchAgeMs: 1000 })),
    ...p,
  };
}

t.test('a healthy onboarded device: who it is, its port, its apps, and nothing wrong', async (t) => {
  const text = renderDiag(state());
  t.match(text, `serial demo-1  uuid ${UUID}`);
  t.match(text, 'LED 4: connected and onboarded');
  t.match(text, 'version 3 (seq 7) applied');
  t.match(text, /eth0\s+yes\s+up\s+10\.0\.0\.5\/24\s+10\.0\.0\.1\s+10\.0\.0\.1\s+reached/);
  t.match(text, 'controller broker 10.9.0.1:1883 reachable via eth0');
  t.match(text, /hello\s+RUNNING\s+0/);
  t.match(text, /Nothing is wrong\.\n$/);
});

t.test('no address on the management port: LED 1 and what to check', async (t) => {
  const s = state({
    net: net({ ports: [port({ addresses: ['fe80::1/64'], reachesController: false })], controller: { host: '10.9.0.1', port: 1883, reachable: false, error: 'no address' } }),
    led: { code: 1, meaning: 'waiting for an IP address on the management ports', reason: 'no usable address on eth0' },
    probe: { at: NOW, target: '10.9.0.1:1883', ok: false, detail: 'no route to 10.9.0.1: no port has a gateway to it' },
  });
  const text = renderDiag(s);
  t.match(text, 'LED 1: waiting for an IP address');
  t.match(text, 'ERROR: eth0: no usable address: no DHCP server answered. Check that one serves this network');
  t.match(text, 'ERROR: the controller\'s broker 10.9.0.1:1883 cannot be reached: no address; diag\'s own probe failed too: no route to 10.9.0.1');
});

t.test('a cable pulled and a port missing are told apart', async (t) => {
  const text = renderDiag(state({ net: net({ ports: [port({ up: false }), port({ ifName: 'eth9', exists: false, up: false, addresses: [] })] }) }));
  t.match(text, 'ERROR: eth0: the link is down. Check the cable');
  t.match(text, 'ERROR: eth9: the interface does not exist');
});

t.test('onboarding refused: the operator\'s command is named with this serial', async (t) => {
  const text = renderDiag(state({ identity: { serial: 'demo-1', broker: 'mqtt://10.9.0.1:1883' }, led: { code: 18, meaning: '', reason: 'not-registered' } }));
  t.match(text, 'not onboarded yet');
  t.match(text, 'ERROR: onboarding refused: the controller does not know serial demo-1. The operator must run `zedctl device add demo-1`');
});

t.test('a refused config names its fields, and says the old one keeps running', async (t) => {
  const text = renderDiag(state({
    config: {
      source: 'controller', appliedVersion: '3', fieldErrors: [{ path: '/apps/0/image', message: 'must be a string' }], unknownConfigItems: [],
      error: { error: 'config 4 is invalid', time: '', severity: 'error' },
    },
  }));
  t.match(text, 'WARNING: the last config was refused: config 4 is invalid (/apps/0/image must be a string); version 3 keeps running');
});

t.test('fallback, app errors, dropped logs and a crashed agent all reach the summary', async (t) => {
  const s = state({
    net: net({ dpcKey: 'local', currentIndex: 1 }),
    dpcList: { currentIndex: 1, list: [
      { key: 'zedagent', timePriority: '', ports: [], state: 'fail', lastError: 'broker 10.9.0.1:1883: timed out through eth0' },
      { key: 'local', timePriority: '', ports: [], state: 'success' },
    ] },
    apps: [app('hello', { state: 'BROKEN', error: { error: 'container exited 5 times in 600 s', time: '', severity: 'error', retryCondition: 'fix the app' } })],
    logs: { queuedBatches: 3, queuedBytes: 1048576, quotaBytes: 67108864, sentBatches: 10, sentLines: 500, droppedLines: 42, filteredLines: 0 },
    agents: AGENT_NAMES.map((name) => ({ name, status: name === 'nim' ? { ...agent(name), state: 'failed' as const, crashes: 5, lastError: 'boom' } : agent(name), touchAgeMs: 1000 })),
  });
  const text = renderDiag(s);
  t.match(text, 'WARNING: using a fallback port configuration (local); the preferred one (zedagent) failed: broker 10.9.0.1:1883: timed out through eth0');
  t.match(text, 'ERROR: app hello: container exited 5 times in 600 s (fix the app)');
  t.match(text, 'WARNING: 42 log lines were dropped on the device');
  t.match(text, 'ERROR: nim crashed 5 times and was stopped: boom');
  t.match(text, 'LOGS        3 batches queued (1.0 MiB of 64.0 MiB), 500 lines sent in 10 batches, 42 dropped');
  t.ok(text.indexOf('nim crashed') < text.indexOf('fallback'), 'a crashed agent comes before what it may explain');
});

t.test('a device without a controller says so, and the host network is only observed', async (t) => {
  const text = renderDiag(state({ identity: {}, led: { code: 4, meaning: 'connected and onboarded', reason: 'local config file' }, net: net({ dpcKey: 'host', currentIndex: -1, controller: undefined }) }));
  t.match(text, 'no controller: config from a local file');
  t.match(text, 'the host\'s own network (no port configuration: nim only observes)');
  t.match(text, 'no controller to test');
});

t.test('with zedbox down, one line says so, and diag\'s own probe still shows', async (t) => {
  const text = renderDiag(state({
    agents: AGENT_NAMES.map((name) => ({ name })), net: undefined, led: undefined, link: undefined, config: undefined, apps: [],
    probe: { at: NOW, target: '10.9.0.1:1883', ok: true, detail: 'connected to 10.9.0.1:1883 in 3 ms' },
  }));
  t.match(text, 'ERROR: zedbox is not running: no agent is on the bus under /run/zedbox');
  t.notMatch(text, 'nim is not on the bus', 'not nine lines saying the same');
  t.match(text, "NETWORK     no status from nim yet\n  diag's probe of 10.9.0.1:1883: ok: connected to 10.9.0.1:1883 in 3 ms");
});

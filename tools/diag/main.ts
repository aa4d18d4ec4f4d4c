// diag: the console view of the device for the person standing in front of it.
// Wiring only: it watches the collections that say how the device is, keeps the
// identity files in view, redraws when something changes (at most every few
// seconds), keeps <run>/diag.txt the same as the screen, and probes the
// controller itself when the network looks wrong. The text is view.ts, the
// diagnosis problems.ts, the probe probe.ts.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ToolSpec } from '../tool';
import { dirsFrom, loggerFrom, numberOption, parseCli } from '../../lib/cli';
import { writeFileAtomicSync } from '../../lib/atomic-file';
import { readOnboarded } from '../../lib/device-identity';
import type { Dirs } from '../../lib/dirs';
import { readProvisioning } from '../../api/provisioning';
import { chooseLedCode } from '../../agents/ledmanager/led-code';
import { controllerProxy } from '../../agents/zedagent/network-path';
import { Bus } from '../../pubsub/bus';
import type { CollectionSpec } from '../../pubsub/catalog';
import {
  AgentStatusCollection, AppInstanceStatusCollection, DeviceConfigStatusCollection, DeviceNetworkStatusCollection,
  DevicePortConfigListCollection, LedBlinkCounterCollection, LogManagerStatusCollection, ledMeaning, type AgentStatus,
} from '../../pubsub/collections';
import { discover } from '../../pubsub/discovery';
import { AGENT_NAMES } from '../../pubsub/owners';
import type { Subscription } from '../../pubsub/subscription';
import { probeWanted, probeController } from './probe';
import type { DeviceIdentity, DiagState, ProbeResult } from './state';
import { renderDiag } from './view';

const HELP = `Usage: diag [--once] [--interval-ms N] [--no-probe]

Shows the device as a person at its console needs it: who it is (serial, UUID, onboarding), its
management ports with their addresses and whether they reach the controller, the controller link and
the LED code, the config in force, the apps with their states and errors, the agents, the log queue,
and then what is wrong in plain words with what to check.

Without --once it redraws when something changes, at most every --interval-ms (default 3000), and at
least every 30 s; the same text is kept in <run>/diag.txt. When the network looks wrong (no address,
the controller unreachable, the LED saying "connecting"), diag probes the controller's broker itself
(name lookup and connection, at most every 30 s) and shows what it found; --no-probe turns that off.`;

const OPTIONS = { once: { type: 'boolean' }, 'interval-ms': { type: 'string' }, 'no-probe': { type: 'boolean' } } as const;
const PROBE_EVERY_MS = 30_000;
const REFRESH_MS = 30_000;

export const diag: ToolSpec = {
  name: 'diag',
  summary: 'console status of the device: identity, ports, controller, apps, agents, logs, and what is wrong',
  help: HELP,
  async main(args, env) {
    const { values } = parseCli(args, OPTIONS);
    const dirs = dirsFrom(values);
    const bus = new Bus({ runDir: dirs.run, persistDir: dirs.persist, log: loggerFrom(values, 'diag') });
    let reason = 'first';
    let dirty = true;
    const changed = (why: string) => () => { if (!dirty) reason = why; dirty = true; };
    const watch = <S extends CollectionSpec>(spec: S, why: string): Subscription =>
      bus.subscribe(spec, { agent: 'diag', create: changed(why), modify: changed(why), delete: changed(why) });
    const agents = new Map(AGENT_NAMES.map((name) => [name, bus.subscribe(AgentStatusCollection, {
      agent: 'diag', owner: name, create: changed('agents'), modify: changed('agents'), delete: changed('agents'),
    })] as const));
    const subs = {
      link: watch(LedBlinkCounterCollection, 'controller link'),
      config: watch(DeviceConfigStatusCollection, 'config'),
      net: watch(DeviceNetworkStatusCollection, 'network'),
      dpc: watch(DevicePortConfigListCollection, 'port configurations'),
      apps: watch(AppInstanceStatusCollection, 'apps'),
      logs: watch(LogManagerStatusCollection, 'logs'),
    };
    // Wait for the state of the owners running now, and only them, so a stopped agent does not stall diag.
    const live = new Set((await discover(dirs.run, 500)).filter((r) => r.info).map((r) => r.owner));
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), 3000);
    const waits = [...[...agents].filter(([n]) => live.has(n)).map(([, s]) => s.whenSynchronized(abort.signal)),
      ...Object.values(subs).filter((s) => live.has(s.owner)).map((s) => s.whenSynchronized(abort.signal))];
    await Promise.allSettled(waits);
    clearTimeout(timer);

    let probe: ProbeResult | undefined;
    let probing = false;
    const state = (): DiagState => {
      const identity = readIdentity(dirs);
      const link = subs.link.get('global') as DiagState['link'];
      const net = subs.net.get('global') as DiagState['net'];
      const choice = live.has('ledmanager') || link || net ? chooseLedCode(link, net) : undefined;
      return {
        now: Date.now(), runDir: dirs.run, reason, identity, link, net,
        led: choice && { code: choice.code, meaning: ledMeaning(choice.code), reason: choice.reason },
        config: subs.config.get('global') as DiagState['config'],
        dpcList: subs.dpc.get('global') as DiagState['dpcList'],
        apps: [...subs.apps.getAll().values()] as DiagState['apps'],
        logs: subs.logs.get('global') as DiagState['logs'],
        agents: AGENT_NAMES.map((name) => ({ name, status: liveStatus(agents.get(name)?.get(name) as AgentStatus | undefined), touchAgeMs: ageOf(path.join(dirs.run, `${name}.touch`)) })),
        probe,
      };
    };
    const maybeProbe = async (s: DiagState): Promise<void> => {
      if (values['no-probe'] || probing || !s.identity.broker) return;
      if (!probeWanted(s)) {
        // The network is fine again: an old failure would contradict the rest of the screen.
        if (probe) { probe = undefined; changed('probe')(); }
        return;
      }
      if (probe && Date.now() - probe.at < PROBE_EVERY_MS) return;
      probing = true;
      try {
        const prov = readProvisioning(dirs);
        if (!prov) return;
        probe = await probeController(prov, controllerProxy(s.net, s.dpcList));
        changed('probe')();
      } finally {
        probing = false;
      }
    };
    const draw = (): void => {
      let text = renderDiag(state());
      try {
        fs.mkdirSync(dirs.run, { recursive: true });
        writeFileAtomicSync(path.join(dirs.run, 'diag.txt'), text);
      } catch (err) {
        // The screen matters more than the file: say why the file is behind, and show the rest.
        text += `(cannot keep ${path.join(dirs.run, 'diag.txt')}: ${(err as Error).message})\n`;
      }
      env.out(values.once ? text : `\x1b[2J\x1b[H${text}`);
      dirty = false;
    };
    try {
      if (values.once) {
        await maybeProbe(state());
        draw();
        return 0;
      }
      const every = numberOption(values, 'interval-ms') ?? 3000;
      let lastDraw = 0;
      await new Promise<void>((resolve) => {
        // Changes are drawn at most every `every` ms; ages and the probe move even when nothing is published.
        // A process that died publishes nothing more: its going is seen here, by its pid.
        const liveAgents = (): string => AGENT_NAMES.filter((n) => liveStatus(agents.get(n)?.get(n) as AgentStatus | undefined)).join(',');
        let drawnAgents = liveAgents();
        const tick = setInterval(() => {
          const now = Date.now();
          const nowAgents = liveAgents();
          if (nowAgents !== drawnAgents && !dirty) { reason = 'agents'; dirty = true; }
          if (now - lastDraw >= REFRESH_MS && !dirty) { reason = 'refresh'; dirty = true; }
          if (!dirty || now - lastDraw < every) return;
          lastDraw = now;
          drawnAgents = nowAgents;
          const s = state();
          void maybeProbe(s);
          draw();
        }, Math.min(every, 250));
        const stop = (): void => { clearInterval(tick); resolve(); };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
      return 0;
    } finally {
      await bus.close();
    }
  },
};

function readIdentity(dirs: Dirs): DeviceIdentity {
  try {
    const prov = readProvisioning(dirs);
    if (!prov) return {};
    const onboarded = readOnboarded(dirs);
    return { serial: prov.serial, broker: prov.broker.url, deviceId: onboarded?.deviceId, onboardedAt: onboarded?.onboardedAt };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

/** The last status an agent published, unless its process is gone (the bus keeps a stopped publisher's last word). */
function liveStatus(status: AgentStatus | undefined): AgentStatus | undefined {
  if (!status) return undefined;
  try {
    process.kill(status.pid, 0);
    return status;
  } catch (err) {
    // EPERM: the process exists under another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM' ? status : undefined;
  }
}

function ageOf(file: string): number | undefined {
  try {
    return Date.now() - fs.statSync(file).mtimeMs;
  } catch {
    return undefined;
  }
}

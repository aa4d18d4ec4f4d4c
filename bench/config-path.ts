// Config to app RUNNING through the controller and its broker, against the same
// config given to the device as a local file, in the same run: what signing,
// MQTT delivery, verification and the checkpoint add to a deployment.
// Each run: a fresh image, a fresh device (and controller), one app; interleaved.
// Env: BENCH_CONFIG_RUNS (3). Run alone: node --import tsx bench/config-path.ts
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Controller } from '../test/lib/controller';
import { Device } from '../test/lib/device';
import { benchImage, benchPlan, deviceConfig, freePorts, purgeFromEngine, waitPort, zedboxOnce, type BenchApp } from './apps';
import { median, msSince } from './common';

const RUNS = Number(process.env.BENCH_CONFIG_RUNS ?? 3);
const TIMEOUT_MS = 180_000;

interface ControllerRun { total: number; command: number }

/** From `zedctl config set` (a new process, as an operator runs it) to the app answering on its port. */
async function throughBrokerOnce(): Promise<ControllerRun> {
  const img = await benchImage();
  const plan = benchPlan(img, await freePorts(1));
  const app = plan.apps[0] as BenchApp;
  const ctl = new Controller();
  const device = new Device();
  const inputs = fs.mkdtempSync(path.join(os.tmpdir(), 'zbcfg-'));
  try {
    await ctl.start();
    const serial = `bench-${randomUUID().slice(0, 8)}`;
    fs.writeFileSync(path.join(device.dirs.config, 'controller.json'), JSON.stringify(await ctl.addDevice(serial)), { mode: 0o600 });
    await device.start();
    await device.waitForAgents('running');
    for (const deadline = Date.now() + 60_000; ;) {
      const v = await ctl.show(serial);
      if (v.status?.state === 'online' && v.device) break;
      if (Date.now() > deadline) throw new Error('bench: the device did not come online');
      await new Promise((r) => setTimeout(r, 100));
    }
    const file = path.join(inputs, 'config.json');
    fs.writeFileSync(file, JSON.stringify(deviceConfig(plan, '1')));
    const t0 = process.hrtime.bigint();
    await ctl.zedctl(['config', 'set', serial, file]);
    const command = msSince(t0);
    await device.waitForApp(app.id, (s) => s?.state === 'RUNNING', `${app.name} RUNNING`, TIMEOUT_MS);
    await waitPort(app.port, Date.now() + TIMEOUT_MS);
    return { total: msSince(t0), command };
  } finally {
    await device.cleanup();
    await ctl.cleanup();
    await purgeFromEngine(img);
    fs.rmSync(inputs, { recursive: true, force: true });
  }
}

export async function benchConfigPath(): Promise<string[]> {
  const out: string[] = [];
  const local: number[] = [];
  const broker: ControllerRun[] = [];
  for (let i = 0; i < RUNS; i++) {
    local.push(await zedboxOnce());
    broker.push(await throughBrokerOnce());
  }
  const l = median(local);
  const b = median(broker.map((r) => r.total));
  const c = median(broker.map((r) => r.command));
  out.push(`local file written -> RUNNING and answering: ${local.map((x) => x.toFixed(0)).join(', ')} ms (median ${l.toFixed(0)})`);
  out.push(`zedctl config set -> RUNNING and answering: ${broker.map((r) => r.total.toFixed(0)).join(', ')} ms (median ${b.toFixed(0)}),`);
  out.push(`  of which the zedctl command itself (a new process: start, sign, publish, PUBACK): median ${c.toFixed(0)} ms`);
  out.push(`=> config -> RUNNING through the broker ${(b / l).toFixed(2)}x the local file (${b.toFixed(0)} vs ${l.toFixed(0)} ms; ${(((b - c) / l)).toFixed(2)}x counting from the broker's PUBACK)`);
  return out;
}

if (require.main === module) {
  benchConfigPath().then((lines) => { for (const line of lines) console.log(line); process.exit(0); }, (err) => { console.error(err); process.exit(1); });
}

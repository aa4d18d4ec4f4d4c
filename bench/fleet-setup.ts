// Making the fleet the benchmark drives. Two ways, both measured:
// - directly: keys made with Node's crypto, registry records written into the
//   controller's state dir as onboarding would leave them (state onboarded, UUID,
//   signing key), and each device's broker account created through the same
//   BrokerProvisioner the controller uses (Mosquitto's dynamic security);
// - for real: `zedctl device add` (registerDevice) then zedagent's onboard() against
//   the running controller, as a device would, which is what the probe times.
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { newBoxKeyPair, newSignKeyPair, type SignKeyPair } from '../lib/keys';
import { openSecret } from '../lib/secrets';
import { onboard } from '../agents/zedagent/onboard-driver';
import { newPassword, type BrokerProvisioner } from '../controller/broker-accounts';
import { registerDevice } from '../controller/cli';
import { StateDir } from '../controller/state-dir';
import type { Provisioning } from '../api/provisioning';
import { Logger } from '../lib/log';
import type { SimDevice } from './fleet-sim';

const raw32 = (der: Buffer): string => der.subarray(der.length - 32).toString('base64');

/** An ed25519 pair in the API's form (seed + public key), made by Node: tweetnacl takes ~4 ms a pair here. */
function nodeSignKeyPair(): SignKeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { seed: raw32(privateKey.export({ format: 'der', type: 'pkcs8' })), publicKey: raw32(publicKey.export({ format: 'der', type: 'spki' })) };
}

function nodeBoxPublicKey(): string {
  return raw32(generateKeyPairSync('x25519').publicKey.export({ format: 'der', type: 'spki' }));
}

export function makeFleet(n: number): SimDevice[] {
  return Array.from({ length: n }, (_, index) => {
    const sign = nodeSignKeyPair();
    return {
      index, deviceId: randomUUID(), serial: `fleet-${String(index).padStart(5, '0')}`, appId: randomUUID(), volumeId: randomUUID(),
      publicKey: sign.publicKey, seed: sign.seed, password: newPassword(),
    };
  });
}

/** Registry records as a finished onboarding writes them (controller/onboarding.ts grant()). */
export function writeRegistry(stateDir: string, fleet: SimDevice[]): void {
  const state = new StateDir(stateDir);
  state.init();
  const now = new Date().toISOString();
  for (const d of fleet) {
    state.writeDevice({
      serial: d.serial, state: 'onboarded', deviceId: d.deviceId, signPublicKey: d.publicKey, boxPublicKey: nodeBoxPublicKey(),
      brokerUsername: d.deviceId, createdAt: now, onboardedAt: now, zedboxVersion: 'bench',
    });
  }
}

/** Each device's broker account, `concurrency` commands in flight. */
export async function createAccounts(provisioner: BrokerProvisioner, fleet: SimDevice[], concurrency: number): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < fleet.length) {
      const d = fleet[next++]!;
      await provisioner.upsert(d.deviceId, d.password, { kind: 'device', deviceId: d.deviceId });
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

export interface OnboardProbe {
  ok: number;
  failed: string[];
  ms: number;
  /** Each device's time from its request to the controller's grant, sorted. */
  eachMs: number[];
  devices: SimDevice[];
}

/**
 * Registers `n` serials and onboards them as zedagent does, `concurrency` devices at a time,
 * against the controller serving `stateDir`. The devices come back with their opened
 * broker passwords, ready to be simulated.
 */
export async function onboardForReal(stateDir: string, workDir: string, n: number, concurrency: number, firstIndex: number): Promise<OnboardProbe> {
  const state = new StateDir(stateDir);
  const quiet = new Logger({ source: 'bench-onboard', level: 'error', sink: { write: () => undefined } });
  const failed: string[] = [];
  const eachMs: number[] = [];
  const devices: SimDevice[] = [];
  const stop = new AbortController();
  // Every device in flight listens on this one signal.
  setMaxListeners(4 * concurrency + 10, stop.signal);
  const t0 = performance.now();
  let next = 0;
  const one = async (i: number): Promise<void> => {
    const serial = `onb-${String(firstIndex + i).padStart(5, '0')}`;
    let text = '';
    registerDevice(state, serial, { mode: 'add' }, { out: (t) => (text += t), err: () => undefined });
    const provisioning = JSON.parse(text) as Provisioning;
    const keys = { sign: newSignKeyPair(), box: newBoxKeyPair(), createdAt: new Date().toISOString() };
    const root = path.join(workDir, serial);
    const dirs = { run: path.join(root, 'run'), persist: path.join(root, 'persist'), config: path.join(root, 'config') };
    const started = performance.now();
    try {
      const rec = await onboard({ dirs, provisioning, keys, log: quiet, signal: stop.signal, attemptTimeoutMs: 30_000, maxBackoffMs: 2000, deadlineMs: 60_000 });
      eachMs.push(performance.now() - started);
      devices.push({
        index: firstIndex + i, deviceId: rec.deviceId, serial, appId: randomUUID(), volumeId: randomUUID(),
        publicKey: keys.sign.publicKey, seed: keys.sign.seed, password: openSecret(rec.broker.password, keys.box.secretKey),
      });
    } catch (err) {
      failed.push(`${serial}: ${(err as Error).message}`);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  };
  const worker = async (): Promise<void> => {
    while (next < n) await one(next++);
  };
  try {
    await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
  } finally {
    stop.abort();
  }
  return { ok: devices.length, failed, ms: performance.now() - t0, eachMs: eachMs.sort((a, b) => a - b), devices };
}

// The reference controller for end-to-end tests: `dist/zedbox zedctl serve` as a
// real process with its own state directory, and the zedctl commands a person
// would type, run against the same state. Devices come from test/lib/device.ts
// with the provisioning file `zedctl device add` writes.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { DeviceView } from '../../controller/views';
import type { Provisioning } from '../../api/provisioning';
import { freePort } from './config-builder';
import { ZEDBOX, run, start, type Proc } from './proc';
import { waitUntil } from './wait';

export interface ControllerOptions {
  /** External broker (Mosquitto): url, CA file, and the dynsec admin on first start. */
  broker?: { url: string; caFile: string; dynsecAdmin?: { username: string; password: string } };
  /** Shares another controller's state (a replica). */
  stateDir?: string;
  replica?: string;
  /** More `zedctl serve` arguments (e.g. --tls-cert FILE --tls-key FILE). */
  serveArgs?: string[];
}


export class Controller {
  readonly stateDir: string;
  private proc?: Proc;
  port = 0;
  private readonly owned: boolean;

  constructor(private readonly opts: ControllerOptions = {}) {
    this.owned = !opts.stateDir;
    this.stateDir = opts.stateDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'zctl-'));
  }

  get lines(): string[] {
    return this.proc?.lines ?? [];
  }

  async start(): Promise<void> {
    if (!this.port && !this.opts.broker) this.port = await freePort();
    const args = ['zedctl', 'serve', '--state', this.stateDir, '--log-format', 'json'];
    if (this.opts.broker) {
      args.push('--broker', this.opts.broker.url, '--ca', this.opts.broker.caFile);
      if (this.opts.replica) args.push('--replica', this.opts.replica);
      const admin = this.opts.broker.dynsecAdmin;
      if (admin) {
        const pwFile = path.join(this.stateDir, '.dynsec-admin-password');
        fs.writeFileSync(pwFile, admin.password, { mode: 0o600 });
        args.push('--dynsec-admin', admin.username, '--dynsec-password-file', pwFile);
      }
    } else {
      args.push('--listen', `127.0.0.1:${this.port}`);
    }
    args.push(...(this.opts.serveArgs ?? []));
    this.proc = start(ZEDBOX, args);
    await this.proc.waitFor((l) => l.includes('zedctl: serving devices'), 'zedctl serve ready', 30_000);
  }

  async stop(): Promise<void> {
    const p = this.proc;
    if (!p || p.child.exitCode !== null || p.child.signalCode !== null) return;
    p.child.kill('SIGTERM');
    await p.exited;
  }

  kill9(): void {
    this.proc?.child.kill('SIGKILL');
  }

  /** A zedctl command against this controller's state; throws on a non-zero exit unless allowed. */
  async zedctl(args: string[], opts: { allowFail?: boolean } = {}): Promise<{ code: number | null; out: string; err: string }> {
    const r = await run(ZEDBOX, ['zedctl', ...args, '--state', this.stateDir]);
    if (r.code !== 0 && !opts.allowFail) throw new Error(`zedctl ${args.join(' ')} exited ${r.code}:\n${r.err}\n${r.out}`);
    return r;
  }

  /** Registers a serial and returns its provisioning file's content. */
  async addDevice(serial: string): Promise<Provisioning> {
    const out = path.join(this.stateDir, `.prov-${serial}.json`);
    await this.zedctl(['device', 'add', serial, '--out', out]);
    return JSON.parse(fs.readFileSync(out, 'utf8')) as Provisioning;
  }

  async setConfig(device: string, config: unknown): Promise<number> {
    const file = path.join(this.stateDir, `.config-${device}-${Date.now()}.json`);
    fs.writeFileSync(file, JSON.stringify(config, null, 2));
    const r = await this.zedctl(['config', 'set', device, file]);
    const seq = /seq (\d+)/.exec(r.out)?.[1];
    if (!seq) throw new Error(`config set printed no seq: ${r.out}`);
    return Number(seq);
  }

  async show(device: string): Promise<ShownDevice> {
    const r = await this.zedctl(['show', device, '--json']);
    return JSON.parse(r.out) as ShownDevice;
  }

  /** Polls `zedctl show DEVICE` until pred holds; on a timeout the error carries the last view. */
  async waitFor(device: string, pred: (v: ShownDevice) => boolean, what: string, timeoutMs = 60_000): Promise<ShownDevice> {
    let last: ShownDevice | undefined;
    await waitUntil(async () => pred((last = await this.show(device))), what, timeoutMs).catch((err: Error) => {
      throw new Error(`${err.message}; last view: ${JSON.stringify({ record: last?.record, status: last?.status, config: last?.config, apps: last?.apps })}`);
    });
    return last!;
  }

  async cleanup(): Promise<void> {
    await this.stop();
    if (this.owned) fs.rmSync(this.stateDir, { recursive: true, force: true });
  }
}

/** What `zedctl show --json` prints. */
export type ShownDevice = DeviceView;

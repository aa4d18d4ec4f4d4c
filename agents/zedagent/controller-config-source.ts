// zedagent's controller config source: the signed config from the broker, and
// the last one accepted, kept on disk as it arrived (signature and all) and
// checked again at boot, so a device that restarts while offline runs it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Verifier } from '../../lib/keys';
import type { ConfigBody } from '../../api/messages';
import { writeFileAtomicSync } from '../../lib/atomic-file';
import type { AgentContext } from '../agent';
import type { ConfigApplier } from './config-applier';
import { decideConfig, type AppliedConfig } from './config-message';

export function controllerCheckpointPath(persistDir: string): string {
  return path.join(persistDir, 'checkpoint', 'controller-config.json');
}

export class ControllerConfigSource {
  private applied: AppliedConfig | undefined;
  /** Set while running the checkpointed config: the controller's first word clears the notice. */
  private fromCheckpoint: { parsed: Parameters<ConfigApplier['apply']>[0]; seq: number; epoch: number } | undefined;

  constructor(
    private readonly ctx: AgentContext,
    private readonly applier: ConfigApplier,
    private readonly controller: Verifier,
    private readonly deviceId: string,
    private readonly onApplied: (body: ConfigBody) => void,
  ) {}

  /** Applies the checkpointed config, if there is one that still verifies; true when it did. */
  boot(): boolean {
    let payload: Buffer;
    try {
      payload = fs.readFileSync(controllerCheckpointPath(this.ctx.dirs.persist));
    } catch {
      this.applier.publishDefaults();
      return false;
    }
    const d = decideConfig(payload, this.controller, this.deviceId, undefined);
    if (d.action !== 'apply') {
      this.ctx.log.error('the checkpointed controller config does not verify; ignoring it', { error: d.action === 'refuse' ? d.errors[0]?.message : d.action });
      this.applier.publishDefaults();
      return false;
    }
    const ok = this.applier.apply(d.parsed, { seq: d.body.seq, epoch: d.body.epoch, fromCheckpoint: true, notice: `running the checkpointed config seq ${d.body.seq} until the controller is reached` });
    if (ok) {
      this.applied = { seq: d.body.seq, bodySha256: d.bodySha256 };
      this.fromCheckpoint = { parsed: d.parsed, seq: d.body.seq, epoch: d.body.epoch };
      this.onApplied(d.body);
    }
    return ok;
  }

  /** What became of it: the LED and the reports follow. */
  receive(payload: Buffer): 'applied' | 'repeat' | 'refused' | 'bad-signature' | 'cleared' {
    if (payload.length === 0) {
      // An empty retained message clears the topic: the controller withdrew the config. Keep running it.
      this.ctx.log.warn('the controller cleared this device\'s config; keeping the applied one');
      return 'cleared';
    }
    const d = decideConfig(payload, this.controller, this.deviceId, this.applied);
    if (d.action === 'repeat') {
      // The controller still wants what the checkpoint held: say it is current now (no change is published).
      const cp = this.fromCheckpoint;
      this.fromCheckpoint = undefined;
      if (cp) this.applier.apply(cp.parsed, { seq: cp.seq, epoch: cp.epoch });
      return 'repeat';
    }
    this.fromCheckpoint = undefined;
    if (d.action === 'refuse') {
      this.applier.refuse(d.bodySha256, d.errors, d.unknownConfigItems, d.what,
        'the controller must send a correctly signed, newer config; the applied config stays in force');
      return d.what === 'config with a bad signature' || d.what === 'unsigned or malformed config' ? 'bad-signature' : 'refused';
    }
    if (!this.applier.apply(d.parsed, { seq: d.body.seq, epoch: d.body.epoch })) return 'refused';
    this.applied = { seq: d.body.seq, bodySha256: d.bodySha256 };
    const file = controllerCheckpointPath(this.ctx.dirs.persist);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    writeFileAtomicSync(file, payload);
    this.onApplied(d.body);
    return 'applied';
  }
}

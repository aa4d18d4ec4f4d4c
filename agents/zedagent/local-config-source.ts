// zedagent's local config source, for a device without a controller: reads the
// config file (or its checkpoint when the file is missing or refused) and
// applies it through the ConfigApplier.
import type { AgentContext } from '../agent';
import { ConfigFileWatcher, readCheckpoint, readConfigFile, writeCheckpoint } from './config-file-driver';
import type { ConfigApplier } from './config-applier';
import { parseDeviceConfig, type ParsedConfig } from './device-config';

export class LocalConfigSource {
  /** The last file content acted on (applied or refused), so an unchanged file is not re-processed. */
  private lastSha: string | undefined;
  private watcher: ConfigFileWatcher | undefined;

  constructor(private readonly ctx: AgentContext, private readonly applier: ConfigApplier) {}

  start(): void {
    const file = this.ctx.settings.configFile;
    const read = readConfigFile(file);
    const parsed = read.ok ? parseDeviceConfig(read.text) : undefined;
    if (read.ok && parsed?.config) this.apply(parsed, read.text);
    else {
      if (parsed) this.refuse(parsed);
      else if (!read.ok && !read.missing) this.applier.refuse(undefined, [{ path: '', message: read.error }], [], 'config file');
      this.applyCheckpoint(read.ok ? false : read.missing);
    }
    this.watcher = new ConfigFileWatcher(file, () => this.reload(), this.ctx);
    this.watcher.start();
  }

  stop(): void {
    this.watcher?.stop();
  }

  /** The file changed (or may have): apply it, refuse it, or ignore it if it is what we already saw. */
  reload(): void {
    const read = readConfigFile(this.ctx.settings.configFile);
    if (!read.ok) {
      // A vanished file removes nothing: the device keeps running the applied config.
      if (read.missing) this.ctx.log.info('config file is gone; keeping the applied config', { file: this.ctx.settings.configFile });
      else this.applier.refuse(undefined, [{ path: '', message: read.error }], [], 'config file');
      return;
    }
    const parsed = parseDeviceConfig(read.text);
    if (parsed.sha256 === this.lastSha) return;
    if (parsed.config) this.apply(parsed, read.text);
    else this.refuse(parsed);
  }

  private apply(parsed: ParsedConfig, text: string): void {
    this.lastSha = parsed.sha256;
    if (this.applier.apply(parsed)) writeCheckpoint(this.ctx.dirs.persist, text);
  }

  private refuse(parsed: ParsedConfig): void {
    this.lastSha = parsed.sha256;
    this.applier.refuse(parsed.sha256, parsed.errors, parsed.unknownConfigItems, 'config file', 'fix the config file; the previously applied config stays in force');
  }

  private applyCheckpoint(fileMissing: boolean): void {
    const text = readCheckpoint(this.ctx.dirs.persist);
    const parsed = text === undefined ? undefined : parseDeviceConfig(text);
    if (parsed?.config) {
      this.ctx.log.warn('applying the checkpointed config: the config file is missing or refused', { version: parsed.config.version });
      this.applier.apply(parsed, {
        fromCheckpoint: true,
        keepRefusal: !fileMissing,
        ...(fileMissing ? { notice: `no config file at ${this.ctx.settings.configFile}; running the checkpointed config version ${parsed.config.version}` } : {}),
      });
      return;
    }
    if (text !== undefined) this.ctx.log.error('the checkpointed config is unreadable; ignoring it', { errors: parsed?.errors.length });
    this.applier.publishDefaults();
  }
}

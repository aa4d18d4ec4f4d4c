// Where lines enter the queue: agents' lines from the relays (and the spool files
// relays leave at exit) and apps' output from app-logs.ts, each checked against its
// remote level. Before the config items arrive nothing is filtered here: the relays
// filtered with the levels they knew, and the defaults must not undo a per-agent
// level a relay still applies from before a restart of logmanager.
import * as fs from 'node:fs';
import type { Logger } from '../../lib/log';
import type { RelayLevels } from '../../lib/log-relay';
import type { AppContainer } from './app-logs';
import type { OutputLine } from './docker-lines';
import { agentLevels, agentLine, appLevel, appLine, passes, sourceLevel } from './levels';
import type { LogQueue } from './log-queue';
import { relayRecord, type RelaySink } from './relay-server';
import type { RemoteLevel } from '../../lib/log-relay';

export class Intake implements RelaySink {
  private items?: Readonly<Record<string, string>>;
  private levels?: RelayLevels;
  private readonly appLevels = new Map<string, RemoteLevel>();

  /** spoolFiles: the relays' spool files now (taken when a relay connects). */
  constructor(private readonly queue: LogQueue, private readonly log: Logger, private readonly spoolFiles: () => readonly string[] = () => []) {}

  /** The levels the relays should apply, once the config items are known. */
  get relayLevels(): RelayLevels | undefined { return this.levels; }

  setItems(items: Readonly<Record<string, string>> | undefined): void {
    this.items = items;
    this.levels = agentLevels(items);
    this.appLevels.clear();
  }

  line(text: string): void {
    const l = agentLine(text, 'logmanager', () => new Date().toISOString());
    if (this.levels && !passes(l.level, sourceLevel(this.levels, l.source))) {
      this.queue.addFiltered(1);
      return;
    }
    this.queue.addLine(l.json, l.time);
  }

  dropped(lines: number, reason: string): void {
    this.queue.addDropped({ lines, batches: 0, reason });
  }

  filtered(lines: number): void {
    this.queue.addFiltered(lines);
  }

  flush(): void {
    this.queue.flush();
  }

  durable(done: () => void): void {
    this.queue.whenDurable(done);
  }

  connected(): void {
    this.ingestSpool(this.spoolFiles());
  }

  appOutput(app: AppContainer, out: OutputLine): void {
    let level = this.appLevels.get(app.name);
    if (level === undefined) {
      level = appLevel(this.items, app.name);
      this.appLevels.set(app.name, level);
    }
    const time = out.time || new Date().toISOString();
    const l = appLine(app, out.stream, time, out.msg, out.note);
    if (!passes(l.level, level)) {
      this.queue.addFiltered(1);
      return;
    }
    this.queue.addAppLine(app.containerId, l.json, time);
  }

  /** Lines relays left at exit: taken into the queue and synced, then the file is removed. */
  ingestSpool(files: readonly string[]): number {
    let lines = 0;
    for (const file of files) {
      let text: string;
      try {
        text = fs.readFileSync(file, 'utf8');
      } catch (err) {
        this.log.warn('cannot read a relay spool file; left in place', { file, error: (err as Error).message });
        continue;
      }
      for (const rec of text.split('\n')) {
        if (!rec) continue;
        relayRecord(rec, this);
        lines++;
      }
      this.queue.syncNow();
      fs.rmSync(file, { force: true });
    }
    return lines;
  }
}

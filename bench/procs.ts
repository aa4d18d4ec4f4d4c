// Forked benchmark children, with bounded waits for their messages and a tail
// of their stderr to show when one fails.
import { fork, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ChildMsg, DoneMsg, ParentMsg, RunCmd, SentMsg } from './common';

export const ROOT = path.resolve(__dirname, '..');
const live = new Set<Child>();
// A benchmark that dies leaves no children behind.
process.on('exit', () => {
  for (const c of live) c.kill();
});

/** A message to or from a child: its type, and whatever else it carries. */
export type Msg = { type: string } & Record<string, unknown>;

export interface ChildOptions {
  /** Extra node flags for this child (BENCH_PROF and BENCH_NODE_ARGS apply to every child). */
  nodeArgs?: string[];
  /** The child's stdout: shown (default) or dropped. */
  stdout?: 'inherit' | 'ignore';
}

export class Child {
  private readonly proc: ChildProcess;
  private readonly inbox: Array<{ type: string }> = [];
  private waiter?: () => void;
  private stderr = '';
  private exited?: string;
  readonly gone: Promise<void>;

  constructor(readonly name: string, script: string, args: string[] = [], opts: ChildOptions = {}) {
    // For finding where time goes: BENCH_PROF=<dir> writes a CPU profile per child;
    // BENCH_NODE_ARGS adds node flags to the children (e.g. --trace-gc).
    const prof = process.env.BENCH_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROF}`] : [];
    prof.push(...(process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean), ...(opts.nodeArgs ?? []));
    this.proc = fork(path.join(ROOT, 'bench', script), args, {
      cwd: ROOT,
      execArgv: ['--import', 'tsx', ...prof],
      serialization: 'advanced',
      stdio: ['ignore', opts.stdout ?? 'inherit', 'pipe', 'ipc'],
    });
    live.add(this);
    this.proc.stderr?.on('data', (d: Buffer) => {
      this.stderr = (this.stderr + d.toString()).slice(-4000);
    });
    this.proc.on('message', (m: { type: string }) => {
      this.inbox.push(m);
      this.waiter?.();
    });
    this.gone = new Promise((resolve) => this.proc.on('exit', (code, sig) => {
      live.delete(this);
      this.exited = `exited (${sig ?? code})`;
      this.waiter?.();
      resolve();
    }));
  }

  get pid(): number { return this.proc.pid ?? 0; }
  /** What the child wrote on stderr lately (its warnings, or why it died). */
  get errors(): string { return this.stderr; }

  send(msg: ParentMsg | Msg): void {
    if (this.proc.connected) this.proc.send(msg);
  }

  /** The next message of `type` (or any of several types), or an error after `ms` or if the child dies. */
  async next<T extends { type: string } = ChildMsg>(type: string | string[], ms: number): Promise<T> {
    const deadline = Date.now() + ms;
    const types = Array.isArray(type) ? type : [type];
    for (;;) {
      const i = this.inbox.findIndex((m) => types.includes(m.type));
      if (i >= 0) return this.inbox.splice(i, 1)[0] as T;
      if (this.exited) throw new Error(`${this.name} ${this.exited} waiting for '${type}'\n${this.stderr}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.name}: no '${type}' within ${ms} ms\n${this.stderr}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiter = () => { clearTimeout(t); resolve(); };
      });
      this.waiter = undefined;
    }
  }

  async ask<T extends { type: string }>(msg: Msg, reply: string | string[], ms: number): Promise<T> {
    this.send(msg);
    return this.next<T>(reply, ms);
  }

  kill(): void {
    this.proc.kill('SIGKILL');
  }

  /** Asks the child to exit; kills it if it has not within `ms`. */
  async stop(ms = 3000): Promise<void> {
    if (this.exited) return;
    this.send({ type: 'exit' });
    const t = setTimeout(() => this.proc.kill('SIGKILL'), ms);
    await this.gone;
    clearTimeout(t);
  }
}

/** Kills whatever children are left (on error or the global watchdog). */
export function killAll(): void {
  for (const c of live) c.stop().catch(() => undefined);
}

/** A publisher and a subscriber process of one implementation over a temp dir. */
export class Pair {
  readonly dir = fs.mkdtempSync('/tmp/zbb-'); // short: ipc paths must fit in 107 bytes
  pub!: Child;
  sub!: Child;

  constructor(readonly impl: 'bus' | 'raw') {}

  async start(): Promise<this> {
    const script = `${this.impl}-child.ts`;
    this.pub = new Child(`${this.impl}-pub`, script, ['pub', this.dir]);
    await this.pub.next('ready', 20_000);
    this.sub = new Child(`${this.impl}-sub`, script, ['sub', this.dir]);
    await this.sub.next('ready', 20_000);
    return this;
  }

  async run(cmd: RunCmd): Promise<{ sent: SentMsg; done: DoneMsg }> {
    this.sub.send(cmd);
    await this.sub.next('armed', 5000);
    this.pub.send(cmd);
    const sent = await this.pub.next<SentMsg>('sent', cmd.timeoutMs + 5000);
    const done = await this.sub.next<DoneMsg>('done', cmd.timeoutMs + 5000);
    await new Promise((r) => setTimeout(r, 200)); // let trailing heartbeats and resyncs settle
    return { sent, done };
  }

  async stop(): Promise<void> {
    await Promise.all([this.sub?.stop(), this.pub?.stop()]);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

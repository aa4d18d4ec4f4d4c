// logmanager: every log line on the device reaches the controller, or is counted
// as dropped (EVE's newlogd). Wiring only: the relay socket (relay-server.ts), the
// apps' output (app-logs.ts), the queue (log-queue.ts) and its bus side.
import * as path from 'node:path';
import { dockerClient } from '../../lib/docker';
import { logRelaySocketPath } from '../../lib/log-relay';
import { DomainStatusCollection } from '../../pubsub/collections/apps';
import { ConfigItemValueMapCollection } from '../../pubsub/collections/config';
import { configItem } from '../../pubsub/collections/config-items';
import { LogBatchAckCollection, LogBatchCollection, LogManagerStatusCollection } from '../../pubsub/collections/logs';
import { untilAborted, type AgentSpec } from '../agent';
import { AppLogs } from './app-logs';
import { Intake } from './intake';
import { LogQueue, WINDOW } from './log-queue';
import { QueueStore } from './queue-store';
import { RelayServer } from './relay-server';

/** Status at most this often (when it changed); the ledger's counters are written as often. */
const STATUS_MS = 1000;
/** How often spool files of processes that exited are looked for (besides the start). */
const SPOOL_SCAN_MS = 30_000;

export const logmanager: AgentSpec = {
  name: 'logmanager',
  summary: 'collects agent and app logs, batches and compresses them, and ships them to the controller',
  help: `Collects every agent's log lines (each zedbox process relays its Logger's lines over
<run>/logmanager.sock) and every app's output (the Docker logs of each container DomainStatus
names: stdout as info, stderr as warn, tagged with the app's name and id). Lines go to an open
batch under <persist>/logmanager/ (collect.ndjson); a batch closes after timer.log.batch seconds or
when its gzip nears the LogBatch limit, and is queued on disk. The ${WINDOW} oldest queued batches are
published as LogBatch; zedagent sends them to the controller and publishes LogBatchAck when it stored
one, and logmanager then deletes it. Past log.queue.max.mib the oldest batches not yet published are
dropped, and the next kept batch says how many lines and batches were lost (droppedBefore).

Remote levels: debug.default.remote.loglevel and agent.<name>.remote.loglevel for agents (sent to
every relay, so a line below its level is never built or sent), debug.app.remote.loglevel and
app.<name>.remote.loglevel for apps. Lines kept local by a level are counted as filtered.
Publishes LogManagerStatus (queued, sent, dropped and filtered counts; key global).`,
  async run(ctx) {
    const log = ctx.log;
    const store = new QueueStore(path.join(ctx.dirs.persist, 'logmanager'));
    const queue = new LogQueue({ store, publication: ctx.publish(LogBatchCollection), log, setTimeout: (fn, ms) => ctx.setTimeout(fn, ms) });
    const statusPub = ctx.publish(LogManagerStatusCollection);
    const intake = new Intake(queue, log, () => store.spoolFiles());
    queue.recover();
    intake.ingestSpool(store.spoolFiles());
    queue.closeBatch();

    const server = new RelayServer(logRelaySocketPath(ctx.dirs.run), intake, log);
    await server.start();
    const apps = new AppLogs({ docker: dockerClient(ctx.settings), cursors: queue.cursors, onLine: (a, l) => intake.appOutput(a, l), log });
    void apps.pruneCursors().then((n) => { if (n) log.info('forgot the cursors of containers the engine no longer has', { containers: n }); });

    const onItems = (items: Readonly<Record<string, string>> | undefined): void => {
      intake.setItems(items);
      queue.configure(configItem(items, 'log.queue.max.mib'), configItem(items, 'timer.log.batch'));
      if (intake.relayLevels) server.setLevels(intake.relayLevels);
    };
    ctx.subscribe(ConfigItemValueMapCollection, {
      create: (_k, v) => onItems(v.items),
      modify: (_k, v) => onItems(v.items),
      delete: () => onItems(undefined),
    });
    const onAck = (_k: string, v: { seq: number; storedAt: string }): void => queue.ack(v.seq, v.storedAt);
    ctx.subscribe(LogBatchAckCollection, { create: onAck, modify: onAck });
    const follow = (): void => apps.update(domains.getAll().values());
    const domains = ctx.subscribe(DomainStatusCollection, { create: follow, modify: follow, delete: follow });

    // publish() sends nothing when the status equals the last one: so it goes out only when it changed.
    ctx.setInterval(() => {
      queue.sync();
      statusPub.publish('global', queue.status());
    }, STATUS_MS);
    ctx.setInterval(() => intake.ingestSpool(store.spoolFiles()), SPOOL_SCAN_MS);
    statusPub.publish('global', queue.status());
    log.info('collecting logs', { socket: server.socketPath, queued: queue.status().queuedBatches });

    try {
      await untilAborted(ctx.signal);
    } finally {
      await server.close();
      await apps.stop();
      queue.stop();
    }
  },
};

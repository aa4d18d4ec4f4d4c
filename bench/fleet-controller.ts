// The fleet benchmark's controller: controller/server.ts startController in a
// process of its own, so its CPU time is its own. Options (with the broker's
// dynsec admin) come over IPC, not argv, so no password shows in `ps`; the
// counters are answered on request, and 'exit' closes it cleanly (a --cpu-prof
// profile is written at that exit).
import type { RunningController } from '../controller/server';
import { Logger } from '../lib/log';

// A what-if for the report, never the default: BENCH_FLEET_WHATIF=no-fsync makes fsync a no-op in
// this process (set before the controller's modules load), to show what the durable writes cost.
const WHATIF_NO_FSYNC = process.env.BENCH_FLEET_WHATIF === 'no-fsync';
if (WHATIF_NO_FSYNC) (require('node:fs') as typeof import('node:fs')).fsyncSync = () => undefined;
const { startController } = require('../controller/server') as typeof import('../controller/server');

type Parent =
  | { type: 'start'; stateDir: string; brokerUrl: string; caPem: string; dynsecAdmin: { username: string; password: string } }
  | { type: 'counters' }
  | { type: 'exit' };

let controller: RunningController | undefined;
const send = (m: unknown): void => void process.send?.(m);
// Its log is counted, not printed: the report says how many warnings and broker reconnects there were
// (under overload the broker may drop the connection and redeliver), and shows the last warning.
const logCounts = { warn: 0, error: 0, reconnects: 0, lastWarning: '' };
const log = new Logger({
  source: 'zedctl',
  level: 'info',
  sink: {
    write(line) {
      const level = /"level":"(\w+)"/.exec(line)?.[1];
      if (level === 'warn' || level === 'error') {
        logCounts[level]++;
        logCounts.lastWarning = line.trim().slice(0, 300);
      }
      if (line.includes('reconnecting to the broker')) logCounts.reconnects++;
    },
  },
});

process.on('message', (m: Parent) => {
  void (async () => {
    try {
      if (m.type === 'start') {
        const t0 = performance.now();
        controller = await startController({
          stateDir: m.stateDir, brokerUrl: m.brokerUrl, caPem: m.caPem, dynsecAdmin: m.dynsecAdmin, replica: 'bench', log,
        });
        send({ type: 'ready', url: controller.url, ms: performance.now() - t0 });
      } else if (m.type === 'counters') {
        // Event-loop time in use since start: unlike CPU time, it counts the waits in synchronous fsync too.
        const { active, idle } = performance.eventLoopUtilization();
        send({ type: 'counters', counters: controller?.counters(), loop: { active, idle }, log: logCounts });
      } else if (m.type === 'exit') {
        await controller?.close();
        process.exit(0);
      }
    } catch (err) {
      send({ type: 'failed', error: (err as Error).stack ?? String(err) });
    }
  })();
});

// The benchmark died or was stopped: no controller outlives it.
process.on('disconnect', () => process.exit(1));

// logmanager in its own process for the logs benchmark (bench/logs.ts), run the
// way `zedbox logmanager` runs it, plus its memory sampled every 20 ms: asked
// with {type:'mem', reset}, it answers the current and peak RSS and heap, and its CPU time so far.
// usage: logs-child.ts <run dir> <persist dir> <config dir>
import { logmanager } from '../agents/logmanager/main';
import { Logger } from '../lib/log';
import { runAgents } from '../zedbox/run-agents';

const [run, persist, config] = process.argv.slice(2) as [string, string, string];
const MB = 1024 * 1024;

const sample = () => {
  const m = process.memoryUsage();
  return { rss: m.rss / MB, heap: m.heapUsed / MB };
};
let peak = sample();
setInterval(() => {
  const s = sample();
  peak = { rss: Math.max(peak.rss, s.rss), heap: Math.max(peak.heap, s.heap) };
}, 20).unref();

process.on('message', (m: { type: string; reset?: boolean }) => {
  if (m.type === 'mem') {
    const now = sample();
    const cpu = process.cpuUsage();
    process.send?.({ type: 'mem', now, peak, cpuMs: (cpu.user + cpu.system) / 1000 });
    if (m.reset) peak = now;
  } else if (m.type === 'exit') {
    process.kill(process.pid, 'SIGTERM');
  }
});

const log = new Logger({ source: 'logmanager', level: 'warn' });
runAgents({ agents: [logmanager], mode: 'alone', dirs: { run, persist, config }, log }).then((code) => process.exit(code));
process.send?.({ type: 'ready' });

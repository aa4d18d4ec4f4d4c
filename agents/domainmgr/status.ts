// What domainmgr reports for one app (DomainStatus) and how a stats sample
// becomes a DomainMetric. Pure.
import { severityFor, type ErrorInfo, type SwState } from '../../pubsub/collections/common';
import type { DomainConfig, DomainMetric, DomainStatus } from '../../pubsub/collections/apps';
import type { StepKind } from './plan';
import type { AppRecord, Limits, ObservedContainer } from './records';

const iso = (ms: number): string => new Date(ms).toISOString();

export function domainStatus(
  cfg: DomainConfig, c: ObservedContainer | undefined, rec: AppRecord | undefined, pending: StepKind | undefined, now: number, limits: Limits,
): DomainStatus {
  const current = !!c && c.running && c.specHash === cfg.specHash;
  const error = rec?.broken ? brokenError(cfg, rec, limits) : rec?.failure ? failureError(rec, now) : undefined;
  return {
    appId: cfg.appId,
    name: cfg.name,
    state: stateOf(cfg, c, rec, current, pending),
    activated: cfg.activate && current,
    specHash: cfg.specHash,
    ...(c ? { containerName: c.name } : {}),
    ...(c ? { containerId: c.id } : {}),
    ...(c?.running ? { startedAt: c.startedAt } : {}),
    restarts: rec?.restarts ?? 0,
    ...(rec?.lastExitCode !== undefined ? { lastExitCode: rec.lastExitCode } : {}),
    ...(rec?.lastExitAt !== undefined ? { lastExitAt: rec.lastExitAt } : {}),
    ...(rec?.lastLogLines !== undefined ? { lastLogLines: rec.lastLogLines } : {}),
    ...(rec?.restartDue !== undefined && !current ? { nextRestartAt: iso(rec.restartDue) } : {}),
    ...(error ? { error } : {}),
  };
}

function stateOf(cfg: DomainConfig, c: ObservedContainer | undefined, rec: AppRecord | undefined, current: boolean, pending: StepKind | undefined): SwState {
  if (!cfg.activate) return c?.running || pending === 'stop' ? 'HALTING' : 'HALTED';
  if (rec?.broken) return 'BROKEN';
  if (current && pending !== 'recreate') return 'RUNNING';
  return 'BOOTING';
}

function brokenError(cfg: DomainConfig, rec: AppRecord, limits: Limits): ErrorInfo {
  const logs = rec.lastLogLines?.length ? `; last output: ${rec.lastLogLines.join(' | ')}` : '';
  return {
    error: `the container of app ${cfg.name} exited ${rec.crashTimes.length} times within ${limits.crashWindowMs / 1000} s ` +
      `(app.crashloop.limit ${limits.crashLimit}); last exit code ${rec.lastExitCode}${logs}`,
    time: rec.lastExitAt ?? new Date(0).toISOString(),
    severity: 'error',
    retryCondition: 'not restarted until the app is deactivated and activated again or its config changes',
    entities: [{ type: 'app', id: cfg.appId }],
    source: 'DomainStatus',
  };
}

function failureError(rec: AppRecord, now: number): ErrorInfo {
  const f = rec.failure!;
  const wait = Math.max(0, Math.ceil((f.retryAt - now) / 1000));
  return {
    error: f.message,
    time: iso(f.firstAt),
    severity: severityFor(f.count - 1, now - f.firstAt),
    retryCondition: `will retry ${f.action} in ${wait} s; failed ${f.count} time${f.count === 1 ? '' : 's'}`,
    source: 'DomainStatus',
  };
}

/** The parts of Docker's stats answer a metric needs (cgroup v1 and v2). */
export interface DockerStats {
  cpu_stats?: { cpu_usage?: { total_usage?: number; percpu_usage?: number[] }; system_cpu_usage?: number; online_cpus?: number };
  precpu_stats?: { cpu_usage?: { total_usage?: number }; system_cpu_usage?: number };
  memory_stats?: { usage?: number; limit?: number; stats?: Record<string, number> };
}

export function metricFromStats(appId: string, s: DockerStats, now: number): DomainMetric {
  const total = s.cpu_stats?.cpu_usage?.total_usage ?? 0;
  const cpuDelta = total - (s.precpu_stats?.cpu_usage?.total_usage ?? 0);
  const systemDelta = (s.cpu_stats?.system_cpu_usage ?? 0) - (s.precpu_stats?.system_cpu_usage ?? 0);
  const cpus = s.cpu_stats?.online_cpus || s.cpu_stats?.cpu_usage?.percpu_usage?.length || 1;
  const cpuPercent = cpuDelta > 0 && systemDelta > 0 ? (cpuDelta / systemDelta) * cpus * 100 : 0;
  const mem = s.memory_stats ?? {};
  // Page cache is reclaimable: cgroup v2 reports it as inactive_file, v1 as cache.
  const cache = mem.stats?.inactive_file ?? mem.stats?.total_inactive_file ?? mem.stats?.cache ?? 0;
  return {
    appId,
    time: iso(now),
    cpuPercent: Math.round(cpuPercent * 100) / 100,
    cpuTotalNanos: total,
    memoryBytes: Math.max(0, Math.round((mem.usage ?? 0) - cache)),
    memoryLimitBytes: Math.max(0, Math.round(mem.limit ?? 0)),
  };
}

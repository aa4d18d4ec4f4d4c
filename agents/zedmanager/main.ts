// zedmanager: the app-instance state machine: install, boot, restart, purge, delete.
// Wiring only: the planner is app-plan.ts, the bus effects app-driver.ts.
import { untilAborted, type AgentSpec } from '../agent';
import { AppDriver } from './app-driver';

export const zedmanager: AgentSpec = {
  name: 'zedmanager',
  summary: 'the app-instance state machine: install, boot, restart, purge, delete',
  help: `Drives each app instance through EVE's states, from download to running, with restart, purge,
activate and delete, and folds errors into the app's status.

Subscribes AppInstanceConfig (zedagent), VolumeRefStatus (volumemgr), DomainStatus (domainmgr).
Publishes VolumeRefConfig, DomainConfig, AppInstanceStatus, AppInstanceSummary and the persistent
AppCounters (<persist>/status/zedmanager/AppCounters/). See agents/zedmanager/README.md.`,
  async run(ctx) {
    const driver = new AppDriver(ctx);
    driver.schedule();
    await untilAborted(ctx.signal);
  },
};

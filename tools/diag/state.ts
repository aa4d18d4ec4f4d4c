// What diag knows about the device at one moment: the bus collections it watches,
// the identity files, the agents' liveness and diag's own probe of the controller.
// The view and the diagnosis are pure functions of this.
import type {
  AgentStatus, AppInstanceStatus, DeviceConfigStatus, DeviceNetworkStatus, DevicePortConfigList, LedBlinkCounter, LogManagerStatus,
} from '../../pubsub/collections';

export interface DeviceIdentity {
  /** From the provisioning file: absent means a device without a controller (a local config file). */
  serial?: string;
  broker?: string;
  /** From the onboarding record. */
  deviceId?: string;
  onboardedAt?: string;
  /** The provisioning file or the onboarding record is unreadable. */
  error?: string;
}

export interface AgentView {
  name: string;
  status?: Readonly<AgentStatus>;
  /** Age of <run>/<agent>.touch; undefined if there is none. */
  touchAgeMs?: number;
}

export interface ProbeResult {
  at: number;
  target: string;
  ok: boolean;
  /** Which address the name resolved to, and through which port the connection went. */
  detail: string;
}

export interface DiagState {
  now: number;
  runDir: string;
  /** Why this redraw: the first, or what changed. */
  reason: string;
  identity: DeviceIdentity;
  link?: Readonly<LedBlinkCounter>;
  led?: { code: number; meaning: string; reason: string };
  config?: Readonly<DeviceConfigStatus>;
  net?: Readonly<DeviceNetworkStatus>;
  dpcList?: Readonly<DevicePortConfigList>;
  apps: readonly Readonly<AppInstanceStatus>[];
  agents: readonly AgentView[];
  logs?: Readonly<LogManagerStatus>;
  probe?: ProbeResult;
}

/** A touch file older than this means the agent (or the whole process) is stuck or gone. */
export const STALE_TOUCH_MS = 60_000;

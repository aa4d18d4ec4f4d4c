// Which HTTP proxy, if any, the link to the controller goes through: the one on the
// management port nim reaches the controller by, in the port configuration nim
// applied; before nim has reached it, the cheapest management port that has one.
// nim's status carries proxies without their credentials, so the URL comes from
// the applied configuration itself. Pure.
import type { DeviceNetworkStatus, DevicePortConfigList } from '../../pubsub/collections';

export function controllerProxy(status: Readonly<DeviceNetworkStatus> | undefined, list: Readonly<DevicePortConfigList> | undefined): string | undefined {
  const applied = list && list.currentIndex >= 0 ? list.list[list.currentIndex] : undefined;
  if (!applied) return undefined;
  const via = status?.controller?.reachable ? status.controller.via : undefined;
  const mgmt = applied.ports.filter((p) => p.management).sort((a, b) => a.cost - b.cost);
  const port = via ? mgmt.find((p) => p.ifName === via) : mgmt.find((p) => p.proxy);
  return port?.proxy;
}

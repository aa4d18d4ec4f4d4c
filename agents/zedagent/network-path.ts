// Which HTTP proxy, if any, the link to the controller goes through: the one on the
// management port nim reaches the controller by, in the port configuration nim
// applied; before nim has reached it (or while it cannot), the cheapest management port's.
// nim's status carries proxies without their credentials, so the URL comes from
// the applied configuration itself. Pure.
import type { DeviceNetworkStatus, DevicePortConfigList } from '../../pubsub/collections';

export function controllerProxy(status: Readonly<DeviceNetworkStatus> | undefined, list: Readonly<DevicePortConfigList> | undefined): string | undefined {
  const applied = list && list.currentIndex >= 0 ? list.list[list.currentIndex] : undefined;
  if (!applied) return undefined;
  const via = status?.controller?.reachable ? status.controller.via : undefined;
  const mgmt = applied.ports.filter((p) => p.management).sort((a, b) => a.cost - b.cost);
  // Not reached (yet, or during an outage): the cheapest management port, as nim tries them; its proxy or none.
  const port = via ? mgmt.find((p) => p.ifName === via) : mgmt[0];
  return port?.proxy;
}

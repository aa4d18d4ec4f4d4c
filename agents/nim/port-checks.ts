// The local half of a connectivity test, and how port results add up to a
// configuration's outcome (EVE's verify: local checks on every port, then the
// controller through management ports, cheapest first). Pure.
import { isUsableAddress, type NetworkPortConfig } from '../../pubsub/collections/network';
import { byCost, portAddress } from './apply-plan';
import type { Outcome } from './dpc-manager';
import type { HostView } from './host-observer';
import type { Lease } from './udhcpc-driver';

/** A link nim just brought up may take this long to get its carrier before that counts as a failure. */
export const CARRIER_WAIT_MS = 10_000;

export type PortCheck =
  | { ifName: string; ok: true; ip: string }
  | { ifName: string; ok: false; wait?: 'intf-wait' | 'ipdns-wait'; error: string };

export function checkPort(p: NetworkPortConfig, view: HostView, lease: Lease | undefined, now: number, upSince: number | undefined): PortCheck {
  const ifName = p.ifName;
  const link = view.links.find((l) => l.ifName === ifName);
  if (!link) return { ifName, ok: false, wait: 'intf-wait', error: `${ifName}: no such interface` };
  if (!link.up) {
    if (upSince !== undefined && now - upSince < CARRIER_WAIT_MS) return { ifName, ok: false, wait: 'ipdns-wait', error: `${ifName}: no carrier yet` };
    return { ifName, ok: false, error: `${ifName}: link is down (no carrier)` };
  }
  if (p.addressing.type === 'none') return { ifName, ok: false, error: `${ifName}: no address (addressing none)` };
  const a = portAddress(p, lease, now);
  if (!a) return { ifName, ok: false, wait: 'ipdns-wait', error: `${ifName}: no DHCP lease` };
  if (!isUsableAddress(a.cidr)) return { ifName, ok: false, error: `${ifName}: ${a.cidr} is not a usable address` };
  if (!view.addrs.some((x) => x.ifName === ifName && x.cidr === a.cidr)) return { ifName, ok: false, error: `${ifName}: ${a.cidr} is not on the link` };
  const missing = (p.dns ?? []).filter((s) => !view.dns.includes(s));
  if (missing.length) return { ifName, ok: false, error: `${ifName}: name server ${missing.join(', ')} is not in the resolver file` };
  return { ifName, ok: true, ip: a.cidr.split('/')[0]! };
}

/** What the controller probes will try: management ports that passed, cheapest first. */
export function candidates(ports: readonly NetworkPortConfig[], checks: readonly PortCheck[]): { port: NetworkPortConfig; ip: string }[] {
  return byCost(ports).flatMap((port) => {
    const c = checks.find((x) => x.ifName === port.ifName);
    return c?.ok ? [{ port, ip: c.ip }] : [];
  });
}

/**
 * The outcome when no probe reached the controller (or none was made): a port still waiting
 * for its interface or lease makes the whole a wait; otherwise a failure that names every problem.
 */
export function localOutcome(ports: readonly NetworkPortConfig[], checks: readonly PortCheck[], probeErrors: readonly string[], hasController: boolean): Outcome {
  const mgmt = byCost(ports);
  if (mgmt.length === 0) {
    if (hasController) return { state: 'fail', error: 'the configuration has no management port' };
    const missing = checks.find((c) => !c.ok && c.wait === 'intf-wait');
    return missing && !missing.ok ? { state: 'intf-wait', error: missing.error } : { state: 'success' };
  }
  const mgmtChecks = checks.filter((c) => mgmt.some((p) => p.ifName === c.ifName));
  const good = mgmtChecks.filter((c) => c.ok);
  if (!hasController && good.length) return { state: 'success' };
  const errors = [...mgmtChecks.flatMap((c) => (c.ok ? [] : [c.error])), ...probeErrors];
  const waiting = mgmtChecks.find((c) => !c.ok && c.wait);
  if (waiting && !waiting.ok) return { state: waiting.wait!, error: errors.join('; ') };
  return { state: good.length ? 'fail-with-ip-and-dns' : 'fail', error: errors.join('; ') || 'no management port works' };
}

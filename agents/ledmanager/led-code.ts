// Which code the LED shows: zedagent's view of the controller link, overridden
// by nim's view of the ports as EVE's DeriveLedCounter does: with no usable
// address on any management port the LED says 1, unless zedagent has heard from
// the controller (a link nim does not count as a port, a bond or a modem, still
// carried it). Pure.
import { ledMeaning, usableManagementPorts, type DeviceNetworkStatus, type LedBlinkCounter } from '../../pubsub/collections';

export interface LedChoice {
  code: number;
  reason: string;
}

export function chooseLedCode(link: Readonly<LedBlinkCounter> | undefined, net: Readonly<DeviceNetworkStatus> | undefined): LedChoice {
  // zedagent heard from the controller (3 and up): the device has an address, whatever nim could name.
  const reached = link !== undefined && link.counter >= 3;
  if (net && !reached && usableManagementPorts(net).length === 0) {
    const mgmt = net.ports.filter((p) => p.management).map((p) => p.ifName);
    const where = mgmt.length ? `no usable address on ${mgmt.join(', ')}` : 'no management port';
    return { code: 1, reason: net.errors.length ? `${where}: ${net.errors.join('; ')}` : where };
  }
  if (!link) return net ? { code: 2, reason: 'an address, and no word from zedagent yet' } : { code: 0, reason: 'no word from zedagent or nim yet' };
  // Below 2 zedagent has not started on the controller; with an address, the device is trying (EVE).
  if (link.counter < 2 && net) return { code: 2, reason: link.reason };
  return { code: link.counter, reason: link.reason || ledMeaning(link.counter) };
}

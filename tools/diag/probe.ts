// diag's own look at the controller when the network seems wrong: resolve the
// broker's name, then reach it the way nim's tests do (nim's probeBroker: TCP, and
// TLS for mqtts with the provisioning CA, through the port's proxy when it has one),
// and say what happened in words a person can act on.
import { promises as dns } from 'node:dns';
import * as net from 'node:net';
import type { Provisioning } from '../../api/provisioning';
import { brokerTarget, probeBroker } from '../../agents/nim/conn-tester';
import { redactProxy } from '../../lib/proxy-tunnel';
import type { DiagState, ProbeResult } from './state';

const TIMEOUT_MS = 5000;

/** Probe when nim says the path is broken, when no port has an address, or while zedagent is still connecting. */
export function probeWanted(s: DiagState): boolean {
  if (!s.net) return true;
  if (s.net.controller && !s.net.controller.reachable) return true;
  return s.led?.code === 1 || s.led?.code === 2;
}

/** `proxy`: the HTTP proxy of the management port in use, as zedagent's link would take it. */
export async function probeController(prov: Provisioning, proxy?: string): Promise<ProbeResult> {
  const at = Date.now();
  let target;
  try {
    target = brokerTarget(prov)!;
  } catch {
    return { at, target: prov.broker.url, ok: false, detail: 'the broker URL in the provisioning file is not a URL' };
  }
  const where = `${target.host}:${target.port}`;
  let address = target.host;
  // Through a proxy the name is the proxy's to resolve.
  if (!proxy && net.isIP(target.host) === 0) {
    try {
      address = (await dns.lookup(target.host)).address;
    } catch (err) {
      return { at, target: where, ok: false, detail: `the name ${target.host} does not resolve (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): check the name servers` };
    }
  }
  const started = Date.now();
  const r = await probeBroker(target, { timeoutMs: TIMEOUT_MS, ...(proxy ? { proxy } : {}) });
  const via = proxy ? ` through the proxy ${redactProxy(proxy)}` : '';
  if (r.ok) return { at, target: where, ok: true, detail: `connected to ${address}:${target.port}${via} in ${Date.now() - started} ms${target.tls ? ' (TLS verified)' : ''}` };
  const advice = r.refused ? ': the host is reachable but no broker listens there'
    : r.clock ? ': the device\'s clock may be wrong' : /timed out/.test(r.error ?? '') ? ': a gateway or firewall drops the traffic' : '';
  return { at, target: where, ok: false, detail: `${address}:${target.port}${via}: ${r.error ?? 'failed'}${advice}` };
}

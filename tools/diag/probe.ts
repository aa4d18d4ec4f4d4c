// diag's own look at the controller when the network seems wrong: resolve the
// broker's name and open a connection (TLS for mqtts), the way the device's link
// would, and say what happened in words a person can act on.
import { promises as dns } from 'node:dns';
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { DiagState, ProbeResult } from './state';

const TIMEOUT_MS = 5000;

/** Probe when nim says the path is broken, when no port has an address, or while zedagent is still connecting. */
export function probeWanted(s: DiagState): boolean {
  if (!s.net) return true;
  if (s.net.controller && !s.net.controller.reachable) return true;
  return s.led?.code === 1 || s.led?.code === 2;
}

export async function probeController(brokerUrl: string, caPem?: string): Promise<ProbeResult> {
  const at = Date.now();
  let url: URL;
  try {
    url = new URL(brokerUrl);
  } catch {
    return { at, target: brokerUrl, ok: false, detail: 'the broker URL in the provisioning file is not a URL' };
  }
  const secure = url.protocol === 'mqtts:';
  const port = Number(url.port || (secure ? 8883 : 1883));
  const target = `${url.hostname}:${port}`;
  let address = url.hostname;
  if (net.isIP(url.hostname) === 0) {
    try {
      address = (await dns.lookup(url.hostname)).address;
    } catch (err) {
      return { at, target, ok: false, detail: `the name ${url.hostname} does not resolve (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): check the name servers` };
    }
  }
  return new Promise((resolve) => {
    const started = Date.now();
    const done = (ok: boolean, detail: string): void => { socket.destroy(); resolve({ at, target, ok, detail }); };
    const socket: net.Socket = secure
      ? tls.connect({ host: address, port, servername: url.hostname, ca: caPem, timeout: TIMEOUT_MS })
      : net.connect({ host: address, port, timeout: TIMEOUT_MS });
    socket.once(secure ? 'secureConnect' : 'connect', () => done(true, `connected to ${address}:${port} from ${socket.localAddress ?? '?'} in ${Date.now() - started} ms${secure ? ' (TLS verified)' : ''}`));
    socket.once('timeout', () => done(false, `no answer from ${address}:${port} within ${TIMEOUT_MS / 1000} s: a gateway or firewall drops the traffic`));
    socket.once('error', (err: NodeJS.ErrnoException) => done(false, words(err, address, port)));
  });
}

function words(err: NodeJS.ErrnoException, address: string, port: number): string {
  switch (err.code) {
    case 'ECONNREFUSED': return `${address} refused port ${port}: the host is reachable but the broker is not running there`;
    case 'ENETUNREACH': return `no route to ${address}: no port has a gateway to it`;
    case 'EHOSTUNREACH': return `${address} is unreachable: the gateway cannot reach it`;
    default: return `${err.code ?? ''} ${err.message}`.trim();
  }
}

// Connectivity tests: can the device reach its controller's broker? A TCP connect
// (and a TLS handshake for mqtts, with the provisioning CA) bound to a management
// port's address, so policy routing sends it out of that port, through the port's
// HTTP proxy with CONNECT when it has one. A refusal from the broker's own host
// means the path works and the broker is down (EVE's RemoteTemporaryFailure).
import { lookup } from 'node:dns/promises';
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { Provisioning } from '../../api/provisioning';
import { brokerAddress } from '../../lib/mqtt-options';
import { errnoWords, openProxyTunnel } from '../../lib/proxy-tunnel';
import { isUsableAddress, type NetworkPortConfig } from '../../pubsub/collections/network';
import type { Outcome } from './dpc-manager';
import { isDevicePort, type HostView } from './host-observer';
import { ipJson } from './link-driver';
import { candidates, checkPort, localOutcome, type PortCheck } from './port-checks';
import type { Lease } from './udhcpc-driver';

export interface BrokerTarget {
  host: string;
  port: number;
  tls: boolean;
  caPem?: string;
}

export interface ProbeResult {
  ok: boolean;
  /** The broker's host refused the connection: the path works. */
  refused?: boolean;
  /** TLS said the certificate is expired or not yet valid: most likely the device's clock (EVE counts it as working). */
  clock?: boolean;
  error?: string;
}

export interface PortResult {
  ifName: string;
  reachesController?: boolean;
  error?: string;
  testedAt: number;
}

export interface ControllerResult {
  host: string;
  port: number;
  reachable: boolean;
  via?: string;
  error?: string;
  testedAt: number;
}

export interface TestResult {
  outcome: Outcome;
  ports: PortResult[];
  controller?: ControllerResult;
  /** The port the controller was reached through. */
  via?: string;
}

/** The broker from the provisioning file (mqtt:// defaults to port 1883, mqtts:// to 8883). */
export function brokerTarget(p: Provisioning | undefined): BrokerTarget | undefined {
  if (!p) return undefined;
  return { ...brokerAddress(p.broker.url), ...(p.broker.caPem ? { caPem: p.broker.caPem } : {}) };
}

const CLOCK_ERRORS = new Set(['CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID']);

export interface ProbeOptions {
  /**
   * The address to connect to, when the caller resolved t.host itself (to bind or route by it).
   * TLS still checks the certificate against t.host: a broker by name has a certificate for the name.
   */
  address?: string;
  localAddress?: string;
  /** CONNECT to t.host through this proxy (the proxy resolves the name). */
  proxy?: string;
  timeoutMs: number;
}

/** One attempt to reach the broker, within timeoutMs. */
export function probeBroker(t: BrokerTarget, o: ProbeOptions): Promise<ProbeResult> {
  return new Promise((resolve) => {
    let done = false;
    const sockets: net.Socket[] = [];
    const finish = (r: ProbeResult): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      // Outermost first: destroying the TCP socket under a live TLS socket crashes Node (SIGSEGV, Node 20).
      for (const s of [...sockets].reverse()) s.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => finish({ ok: false, error: `connection timed out after ${o.timeoutMs / 1000} s` }), o.timeoutMs);
    const secure = (sock: net.Socket): void => {
      if (!t.tls) return finish({ ok: true });
      const s = tls.connect({ socket: sock, host: t.host, ...(net.isIP(t.host) ? {} : { servername: t.host }), ...(t.caPem ? { ca: t.caPem } : {}) });
      sockets.push(s);
      s.once('secureConnect', () => finish({ ok: true }));
      s.once('error', (err: NodeJS.ErrnoException) => finish({ ok: false, clock: CLOCK_ERRORS.has(err.code ?? ''), error: `TLS handshake failed: ${err.message}` }));
    };
    const local = o.localAddress ? { localAddress: o.localAddress } : {};
    if (o.proxy) {
      openProxyTunnel(o.proxy, t.host, t.port, { ...local, onSocket: (s) => sockets.push(s) })
        .then(secure, (err: Error) => finish({ ok: false, error: err.message }));
      return;
    }
    const first = net.connect({ host: o.address ?? t.host, port: t.port, ...local });
    sockets.push(first);
    first.once('error', (err: NodeJS.ErrnoException) => finish({ ok: false, refused: err.code === 'ECONNREFUSED', error: errnoWords(err) }));
    first.once('connect', () => secure(first));
  });
}

async function resolveHost(host: string): Promise<string> {
  if (net.isIP(host)) return host;
  return (await lookup(host, { family: 4 })).address;
}

const isLoopback = (ip: string): boolean => ip.startsWith('127.') || ip === '::1';

function proxyHost(url: string): string {
  try {
    return new URL(url).hostname.replace(/^\[|\]$/g, '');
  } catch {
    return ''; // openProxyTunnel reports the bad URL
  }
}

export interface ConfigTestInput {
  ports: readonly NetworkPortConfig[];
  view: HostView;
  leases: ReadonlyMap<string, Lease>;
  upSince(ifName: string): number | undefined;
  target: BrokerTarget | undefined;
  timeoutMs: number;
  now: number;
}

/** Tests a configuration that nim applied: local checks on every port, then the broker through each management port. */
export async function testConfig(i: ConfigTestInput): Promise<TestResult> {
  const checks: PortCheck[] = i.ports.map((p) => checkPort(p, i.view, i.leases.get(p.ifName), i.now, i.upSince(p.ifName)));
  const ports: PortResult[] = checks.map((c) => ({ ifName: c.ifName, testedAt: i.now, ...(c.ok ? {} : { error: c.error }) }));
  const t = i.target;
  if (!t) return { outcome: localOutcome(i.ports, checks, [], false), ports };
  const where = `broker ${t.host}:${t.port}`;
  const cands = candidates(i.ports, checks);
  // Resolved here only for direct paths (the address binds and routes the probe); a proxy is
  // given the name and resolves it itself. TLS checks the certificate against the name either way.
  let ip: string | undefined;
  let unresolved: string | undefined;
  if (cands.some((c) => !c.port.proxy)) {
    try {
      ip = await resolveHost(t.host);
    } catch (err) {
      unresolved = `${where}: cannot resolve the name (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`;
    }
  }
  if (unresolved && !cands.some((c) => c.port.proxy)) {
    return { outcome: { state: 'fail', error: unresolved }, ports, controller: { host: t.host, port: t.port, reachable: false, error: unresolved, testedAt: i.now } };
  }
  const probeErrors: string[] = [];
  for (const c of cands) {
    const pr = ports.find((p) => p.ifName === c.port.ifName)!;
    if (!c.port.proxy && ip === undefined) {
      pr.reachesController = false;
      pr.error = `${unresolved} through ${c.port.ifName}`;
      probeErrors.push(pr.error);
      continue;
    }
    const r = await probeBroker(t, c.port.proxy
      ? { ...(isLoopback(proxyHost(c.port.proxy)) ? {} : { localAddress: c.ip }), proxy: c.port.proxy, timeoutMs: i.timeoutMs }
      : { address: ip, ...(isLoopback(ip!) ? {} : { localAddress: c.ip }), timeoutMs: i.timeoutMs });
    const working = r.ok || ((r.refused || r.clock) && !c.port.proxy);
    pr.reachesController = working;
    if (working) {
      const error = r.ok ? undefined : `${where}: ${r.error} through ${c.port.ifName} (the path works; the broker does not answer)`;
      if (error) pr.error = error;
      return {
        outcome: { state: r.ok ? 'success' : 'remote-wait', ...(error ? { error } : {}) },
        ports, via: c.port.ifName,
        controller: { host: t.host, port: t.port, reachable: !!r.ok, via: c.port.ifName, testedAt: i.now, ...(error ? { error } : {}) },
      };
    }
    pr.error = `${where}: ${r.error} through ${c.port.ifName}`;
    probeErrors.push(pr.error);
  }
  const outcome = localOutcome(i.ports, checks, probeErrors, true);
  return { outcome, ports, controller: { host: t.host, port: t.port, reachable: false, testedAt: i.now, error: outcome.error ?? 'no management port to test through' } };
}

/**
 * Host mode (nothing configured): the host's routes decide the path. The port is the one
 * `ip route get` names for the broker; without a controller, any usable address is success.
 */
export async function testHost(view: HostView, target: BrokerTarget | undefined, timeoutMs: number, now: number): Promise<TestResult> {
  const usable = view.links.filter(isDevicePort).some((l) => view.addrs.some((a) => a.ifName === l.ifName && a.family === 'inet' && isUsableAddress(a.cidr)));
  if (!target) return { outcome: usable ? { state: 'success' } : { state: 'fail', error: 'no port has a usable address' }, ports: [] };
  const where = `broker ${target.host}:${target.port}`;
  let ip: string;
  try {
    ip = await resolveHost(target.host);
  } catch (err) {
    const error = `${where}: cannot resolve the name (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`;
    return { outcome: { state: 'fail', error }, ports: [], controller: { host: target.host, port: target.port, reachable: false, error, testedAt: now } };
  }
  let via: string | undefined;
  try {
    via = (await ipJson<{ dev?: string }>(['route', 'get', ip]))[0]?.dev;
  } catch (err) {
    const error = `${where}: no route (${(err as Error).message.replace(/^ip [^:]*: /, '')})`;
    return { outcome: { state: 'fail', error }, ports: [], controller: { host: target.host, port: target.port, reachable: false, error, testedAt: now } };
  }
  const r = await probeBroker(target, { address: ip, timeoutMs });
  const working = r.ok || r.refused || r.clock;
  const error = r.ok ? undefined : `${where}: ${r.error}${via ? ` through ${via}` : ''}${working ? ' (the path works; the broker does not answer)' : ''}`;
  return {
    outcome: { state: r.ok ? 'success' : working ? 'remote-wait' : 'fail', ...(error ? { error } : {}) },
    ports: via ? [{ ifName: via, reachesController: !!working, testedAt: now, ...(error ? { error } : {}) }] : [],
    ...(working && via ? { via } : {}),
    controller: { host: target.host, port: target.port, reachable: !!r.ok, ...(via ? { via } : {}), testedAt: now, ...(error ? { error } : {}) },
  };
}

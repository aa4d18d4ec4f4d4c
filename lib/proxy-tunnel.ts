// A TCP tunnel through an HTTP proxy (CONNECT), for a device whose only way to its
// controller is a proxy: nim tests the path through it, zedagent's MQTT link runs
// through it. A proxy URL may carry a user and password; they go in the
// Proxy-Authorization header and never into an error message.
import * as net from 'node:net';
import { Duplex } from 'node:stream';

/** A proxy URL without its user and password (for messages, logs and status). */
export function redactProxy(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}`;
  } catch {
    return 'the proxy';
  }
}

const ERRNO: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'connection refused', EHOSTUNREACH: 'no route to host', ENETUNREACH: 'network unreachable',
  EADDRNOTAVAIL: 'the port\'s address is not available', ECONNRESET: 'connection reset', ETIMEDOUT: 'connection timed out',
};

/** An errno in words a person can act on (the message itself for the rest). */
export function errnoWords(err: NodeJS.ErrnoException): string {
  return ERRNO[err.code ?? ''] ?? err.message;
}

export interface TunnelOptions {
  localAddress?: string;
  /** Register the socket as soon as it exists, so a caller's timeout can destroy it. */
  onSocket?: (s: net.Socket) => void;
  /** Give up when the proxy has not answered CONNECT by then (default 15 s). */
  timeoutMs?: number;
}

/** A proxy's answer to CONNECT is a status line and a few headers; more than this is not an answer. */
const MAX_REPLY_HEAD = 16 * 1024;

/**
 * Resolves with a socket that reaches host:port through the proxy once it answered 200 to CONNECT;
 * rejects with "proxy http://h:p: <why>". The caller owns the socket (and its timeout).
 */
export function openProxyTunnel(proxyUrl: string, host: string, port: number, o: TunnelOptions = {}): Promise<net.Socket> {
  const proxy = new URL(proxyUrl);
  const name = redactProxy(proxyUrl);
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: proxy.hostname, port: Number(proxy.port), ...(o.localAddress ? { localAddress: o.localAddress } : {}) });
    o.onSocket?.(sock);
    // A code mqtt.js recognises as a socket error, so the link reports it (and retries) instead of ignoring it.
    const fail = (why: string, code = 'ECONNRESET'): void => {
      clearTimeout(timer);
      sock.destroy();
      reject(Object.assign(new Error(`proxy ${name}${why.startsWith('answered') ? ' ' : ': '}${why}`), { code }));
    };
    const timeoutMs = o.timeoutMs ?? 15_000;
    const timer = setTimeout(() => fail(`no answer to CONNECT within ${timeoutMs / 1000} s`, 'ETIMEDOUT'), timeoutMs);
    sock.once('error', (err: NodeJS.ErrnoException) => fail(errnoWords(err), err.code));
    sock.once('close', () => fail('closed the connection before answering'));
    sock.once('connect', () => {
      const where = `${net.isIPv6(host) ? `[${host}]` : host}:${port}`;
      const auth = proxy.username
        ? `Proxy-Authorization: Basic ${Buffer.from(`${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`).toString('base64')}\r\n`
        : '';
      sock.write(`CONNECT ${where} HTTP/1.1\r\nHost: ${where}\r\n${auth}\r\n`);
      let head = '';
      const onData = (chunk: Buffer): void => {
        head += chunk.toString('latin1');
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) {
          if (head.length > MAX_REPLY_HEAD) fail(`answered with more than ${MAX_REPLY_HEAD} bytes of headers`);
          return;
        }
        sock.off('data', onData);
        const status = head.slice(0, head.indexOf('\r\n'));
        if (!/^HTTP\/1\.[01] 200/.test(status)) return fail(`answered "${status}"`);
        const rest = head.slice(end + 4);
        if (rest) sock.unshift(Buffer.from(rest, 'latin1'));
        clearTimeout(timer);
        sock.removeAllListeners('error');
        sock.removeAllListeners('close');
        resolve(sock);
      };
      sock.on('data', onData);
    });
  });
}

/**
 * A stream that is usable at once and connects later: writes wait until `open` resolves, and a
 * failure destroys the stream with its error. mqtt.js wants its stream synchronously; a tunnel
 * (and TLS inside it) comes asynchronously.
 */
export class DeferredStream extends Duplex {
  private socket: net.Socket | undefined;
  /** Sockets `open` made and has not handed over yet: destroyed with the stream, so a give-up leaks nothing. */
  private readonly pending = new Set<net.Socket>();

  /** `open` registers each socket it makes with `track`, outermost last. */
  constructor(open: (track: (s: net.Socket) => void) => Promise<net.Socket>) {
    super({ autoDestroy: false });
    this.cork();
    open((s) => this.pending.add(s)).then((s) => this.attach(s), (err: Error) => this.destroy(err));
  }

  private attach(s: net.Socket): void {
    this.pending.clear();
    if (this.destroyed) return void s.destroy();
    this.socket = s;
    s.on('data', (chunk: Buffer) => { if (!this.push(chunk)) s.pause(); });
    s.on('end', () => this.push(null));
    s.on('error', (err) => this.destroy(err));
    s.on('close', () => this.destroy());
    this.emit('connect');
    this.uncork();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.socket!.write(chunk, cb);
  }

  override _read(): void {
    this.socket?.resume();
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.socket?.end();
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.socket?.destroy();
    // Outermost first: destroying a TCP socket under a live TLS socket crashes Node 20.
    for (const s of [...this.pending].reverse()) s.destroy();
    this.pending.clear();
    cb(err);
  }
}

// The test network fixture: a real proxy between real loopback sockets, in each mode.
import * as net from 'node:net';
import t from 'tap';
import { startProxy, type TcpProxy } from '../fixtures/tcp-proxy';

const BIG = 100_000;

/** Upstream: echoes what it gets, and answers a line "BIG" with BIG bytes. */
async function upstreamServer(): Promise<{ port: number; accepted: () => number; close(): Promise<void> }> {
  let accepted = 0;
  const socks = new Set<net.Socket>();
  const server = net.createServer((s) => {
    accepted++;
    socks.add(s);
    s.on('close', () => socks.delete(s));
    s.on('error', () => {});
    s.on('data', (d: Buffer) => (d.toString() === 'BIG\n' ? s.write(Buffer.alloc(BIG, 7)) : s.write(d)));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    accepted: () => accepted,
    close: () => new Promise((r) => { for (const s of socks) s.destroy(); server.close(() => r()); }),
  };
}

interface Client { sock: net.Socket; received: () => number; text: () => string; closed: Promise<void>; waitBytes(n: number): Promise<void> }

function connect(proxy: TcpProxy): Client {
  const sock = net.connect(proxy.port, '127.0.0.1');
  const chunks: Buffer[] = [];
  let total = 0;
  const waiters = new Set<() => void>();
  sock.on('error', () => {});
  sock.on('data', (d: Buffer) => { chunks.push(d); total += d.length; for (const w of waiters) w(); });
  const closed = new Promise<void>((r) => sock.on('close', () => { for (const w of waiters) w(); r(); }));
  return {
    sock,
    received: () => total,
    text: () => Buffer.concat(chunks).toString(),
    closed,
    waitBytes: (n) => new Promise((resolve, reject) => {
      const check = (): void => {
        if (total >= n) { waiters.delete(check); resolve(); } else if (sock.destroyed) { waiters.delete(check); reject(new Error(`closed after ${total} of ${n} bytes`)); }
      };
      waiters.add(check);
      check();
    }),
  };
}

async function until(pred: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (pred()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`never: ${what}`);
}

async function setup(t: { teardown(fn: () => Promise<void>): void }): Promise<{ up: Awaited<ReturnType<typeof upstreamServer>>; proxy: TcpProxy }> {
  const up = await upstreamServer();
  const proxy = await startProxy(`127.0.0.1:${up.port}`);
  t.teardown(async () => { await proxy.close(); await up.close(); });
  return { up, proxy };
}

t.test('pass forwards both ways and counts bytes and connections', async (t) => {
  const { proxy } = await setup(t);
  const c = connect(proxy);
  c.sock.write('hello');
  await c.waitBytes(5);
  t.equal(c.text(), 'hello');
  t.match(proxy.stats(), { connections: 1, open: 1, bytesUp: 5, bytesDown: 5, cuts: 0, refused: 0 });
  c.sock.destroy();
  await until(() => proxy.stats().open === 0, 'the connection is forgotten after the client closes');
});

t.test('refuse closes new connections at once and never reaches upstream; pass again works', async (t) => {
  const { up, proxy } = await setup(t);
  proxy.setMode({ kind: 'refuse' });
  const c = connect(proxy);
  await c.closed;
  t.equal(c.received(), 0, 'nothing received');
  t.equal(up.accepted(), 0, 'upstream never saw it');
  t.match(proxy.stats(), { connections: 1, refused: 1, open: 0 });
  proxy.setMode({ kind: 'pass' });
  const d = connect(proxy);
  d.sock.write('again');
  await d.waitBytes(5);
  t.equal(d.text(), 'again');
  d.sock.destroy();
});

t.test('blackhole accepts and holds the connection but forwards nothing; pass lets later data through', async (t) => {
  const { up, proxy } = await setup(t);
  proxy.setMode({ kind: 'blackhole' });
  const c = connect(proxy);
  c.sock.write('ping');
  await until(() => proxy.stats().bytesDropped === 4, 'the 4 bytes are dropped');
  t.equal(up.accepted(), 0, 'no upstream connection');
  t.equal(c.received(), 0);
  t.notOk(c.sock.destroyed, 'the client connection stays open');
  t.equal(proxy.stats().open, 1);
  proxy.setMode({ kind: 'pass' });
  c.sock.write('x');
  await c.waitBytes(1);
  t.equal(c.text(), 'x', 'what was sent in blackhole mode is lost; later data flows');
  c.sock.destroy();
});

t.test('blackhole on an open connection stops what upstream sends', async (t) => {
  const { proxy } = await setup(t);
  const c = connect(proxy);
  c.sock.write('a');
  await c.waitBytes(1);
  proxy.setMode({ kind: 'blackhole' });
  c.sock.write('b');
  await until(() => proxy.stats().bytesDropped === 1, 'b dropped');
  t.equal(c.text(), 'a');
  c.sock.destroy();
});

t.test('cut gives each connection exactly N bytes from upstream, then closes it', async (t) => {
  const { proxy } = await setup(t);
  proxy.setMode({ kind: 'cut', afterBytes: 10_000 });
  for (const round of [1, 2]) {
    const c = connect(proxy);
    c.sock.write('BIG\n');
    await c.closed;
    t.equal(c.received(), 10_000, `connection ${round} got exactly 10000 of ${BIG} bytes`);
    t.equal(proxy.stats().cuts, round);
  }
  t.equal(proxy.stats().bytesDown, 20_000);
  proxy.setMode({ kind: 'pass' });
  const whole = connect(proxy);
  whole.sock.write('BIG\n');
  await whole.waitBytes(BIG);
  t.equal(whole.received(), BIG, 'after pass, the whole answer arrives');
  whole.sock.destroy();
});

t.test('switching to cut cuts an open connection already past the limit; cutAll cuts the rest', async (t) => {
  const { proxy } = await setup(t);
  const a = connect(proxy);
  a.sock.write('BIG\n');
  await a.waitBytes(BIG);
  const b = connect(proxy);
  b.sock.write('b');
  await b.waitBytes(1);
  proxy.setMode({ kind: 'cut', afterBytes: 50 });
  await a.closed;
  t.equal(proxy.stats().cuts, 1, 'only the one past 50 bytes');
  t.notOk(b.sock.destroyed, 'the other stays');
  proxy.cutAll();
  await b.closed;
  t.equal(proxy.stats().cuts, 2);
  t.equal(proxy.stats().open, 0);
});

t.test('close() ends open connections and stops listening', async (t) => {
  const up = await upstreamServer();
  t.teardown(() => up.close());
  const proxy = await startProxy({ host: '127.0.0.1', port: up.port });
  const c = connect(proxy);
  c.sock.write('x');
  await c.waitBytes(1);
  await proxy.close();
  await c.closed;
  const err = await new Promise<NodeJS.ErrnoException>((resolve) => {
    const s = net.connect(proxy.port, '127.0.0.1');
    s.on('error', resolve);
    s.on('connect', () => { s.destroy(); resolve(Object.assign(new Error('connected'), { code: 'CONNECTED' })); });
  });
  t.equal(err.code, 'ECONNREFUSED');
});

t.test('bad modes and upstreams are refused with the field named', async (t) => {
  const { proxy } = await setup(t);
  t.throws(() => proxy.setMode({ kind: 'cut', afterBytes: -1 }), /afterBytes/);
  t.throws(() => proxy.setMode({ kind: 'cut', afterBytes: 1.5 }), /afterBytes/);
  t.equal(proxy.currentMode.kind, 'pass', 'the mode is unchanged');
  await t.rejects(startProxy('no-port-here'), /not host:port/);
});

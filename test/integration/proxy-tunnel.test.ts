// The CONNECT tunnel against proxies that misbehave on a real socket: one that
// never answers, one that answers without end, and a give-up by the caller. Each
// must end with a clear error and leave no connection open at the proxy.
import * as net from 'node:net';
import t from 'tap';
import { DeferredStream, openProxyTunnel } from '../../lib/proxy-tunnel';
import { waitUntil } from '../lib/wait';

/** A "proxy" that accepts and then does what `behave` says; counts connections still open. */
async function fakeProxy(t: { teardown(fn: () => void): void }, behave: (s: net.Socket) => void): Promise<{ url: string; open: () => number }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    s.resume(); // read (and ignore) the CONNECT, so the client's close is seen
    behave(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => { for (const s of sockets) s.destroy(); server.close(); });
  return { url: `http://user:s3cret@127.0.0.1:${(server.address() as net.AddressInfo).port}`, open: () => sockets.size };
}

t.test('a proxy that never answers CONNECT: a timeout, named, and the connection closed', async (t) => {
  const proxy = await fakeProxy(t, () => {});
  const err = await openProxyTunnel(proxy.url, 'broker.example', 1883, { timeoutMs: 300 }).then(() => undefined, (e: Error & { code?: string }) => e);
  t.match(err?.message, /^proxy http:\/\/127\.0\.0\.1:\d+: no answer to CONNECT within 0\.3 s$/);
  t.equal(err?.code, 'ETIMEDOUT', 'a code mqtt.js treats as a connection failure (and retries)');
  t.notMatch(err?.message, 's3cret', 'no password in the error');
  await waitUntil(() => proxy.open() === 0, 'the proxy sees the connection closed', 5000);
});

t.test('a proxy that sends headers without end is cut off', async (t) => {
  const proxy = await fakeProxy(t, (s) => { s.write('HTTP/1.1 200 OK\r\n'); const i = setInterval(() => s.write('X-Pad: ' + 'a'.repeat(1000) + '\r\n'), 1); s.on('close', () => clearInterval(i)); });
  const err = await openProxyTunnel(proxy.url, 'broker.example', 1883, { timeoutMs: 5000 }).then(() => undefined, (e: Error) => e);
  t.match(err?.message, /answered with more than 16384 bytes of headers/);
  await waitUntil(() => proxy.open() === 0, 'the proxy sees the connection closed', 5000);
});

t.test('a stream given up while its tunnel is pending closes the tunnel\'s socket', async (t) => {
  const proxy = await fakeProxy(t, () => {});
  const stream = new DeferredStream((track) => openProxyTunnel(proxy.url, 'broker.example', 1883, { onSocket: track, timeoutMs: 60_000 }));
  stream.on('error', () => {});
  await waitUntil(() => proxy.open() === 1, 'the proxy has the connection', 5000);
  stream.destroy(new Error('connect timeout'));
  await waitUntil(() => proxy.open() === 0, 'the proxy sees it closed at once, not after 60 s', 5000);
  t.pass('nothing left open');
});

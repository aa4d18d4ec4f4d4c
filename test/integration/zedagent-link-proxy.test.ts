// zedagent's link to the controller through the HTTP proxy of its management port:
// a real embedded broker, a real tinyproxy. The link asks for the proxy at every
// (re)connect, so a proxy nim applies later is used, a dead one is named in the
// error, and a link through a proxy that dies goes down with it.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomUUID } from 'node:crypto';
import t from 'tap';
import { ControllerLink } from '../../agents/zedagent/controller-link';
import { startEmbeddedBroker } from '../../controller/embedded-broker';
import { keyId, newSignKeyPair, signerFor } from '../../lib/keys';
import { Logger } from '../../lib/log';
import { Accounts } from '../lib/broker-accounts';
import { freePort } from '../lib/config-builder';
import { startTinyproxy } from '../lib/tinyproxy';
import { waitUntil } from '../lib/wait';

t.test('the link goes through the proxy it is given, and names a proxy that fails', async (t) => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'zb-link-proxy-'));
  t.teardown(() => fs.rmSync(dataDir, { recursive: true, force: true }));
  const accounts = new Accounts();
  const deviceId = randomUUID();
  const password = accounts.add(deviceId, { kind: 'device', deviceId });
  const broker = await startEmbeddedBroker({ port: 0, accounts, dataDir, log: new Logger({ source: 'broker', level: 'error' }) });
  t.teardown(() => broker.close());
  broker.admitDevices();

  const lines: string[] = [];
  const log = new Logger({ source: 'zedagent', level: 'info', sink: { write: (l) => lines.push(l) } });
  const deadProxy = `http://user:s3cret@127.0.0.1:${await freePort()}`;
  let proxy: string | undefined = deadProxy;
  const ups: number[] = [];
  const downs: string[] = [];
  const sign = newSignKeyPair();
  const link = new ControllerLink(
    { url: broker.url, username: deviceId, password }, deviceId, signerFor(sign), keyId(sign.publicKey), log,
    { onConfig: () => {}, onLogAck: () => {}, onUp: () => ups.push(Date.now()), onDown: (r) => downs.push(r) },
    () => proxy,
  );
  t.teardown(() => link.stop());
  link.start();
  await waitUntil(() => link.lastError !== undefined, 'the dead proxy fails the connection', 10_000);
  t.match(link.lastError, /^proxy http:\/\/127\.0\.0\.1:\d+: connection refused$/, 'the error names the proxy and why');
  t.notOk(lines.some((l) => l.includes('s3cret')), 'the proxy\'s password is in no log line');
  t.equal(link.connected, false);

  // nim applies a working proxy: the next reconnect goes through it.
  const tiny = await startTinyproxy(t);
  proxy = tiny.url;
  await waitUntil(() => link.connected, 'connected through tinyproxy', 10_000);
  t.equal(broker.stats().clients, 1, 'the broker has the device');
  t.ok(lines.some((l) => l.includes('reaching the controller broker through a proxy') && l.includes(tiny.url)), 'the log says which proxy');

  // The path is the proxy: when it dies, the link goes down.
  tiny.stop();
  await waitUntil(() => !link.connected, 'the link down with the proxy', 10_000);
  t.ok(downs.length >= 1, 'onDown was told');

  // No proxy any more (the port configuration changed): the link reconnects directly.
  proxy = undefined;
  await waitUntil(() => link.connected, 'connected directly', 10_000);
  t.equal(ups.length, 2, 'up once through the proxy, once directly');
});

// diag's own probe of the broker through the management port's proxy, against a
// real tinyproxy: it says which proxy, and names a dead one.
import * as net from 'node:net';
import t from 'tap';
import type { Provisioning } from '../../api/provisioning';
import { probeController } from '../../tools/diag/probe';
import { freePort } from '../lib/config-builder';
import { testProvisioning } from '../lib/provisioning';
import { startTinyproxy } from '../lib/tinyproxy';

const prov = (port: number): Provisioning => testProvisioning(`mqtt://127.0.0.1:${port}`, 'diag-1');

t.test('through the port\'s proxy, as zedagent\'s link goes', async (t) => {
  const broker = net.createServer((s) => s.destroy()).listen(0, '127.0.0.1');
  t.teardown(() => broker.close());
  await new Promise((r) => broker.once('listening', r));
  const port = (broker.address() as net.AddressInfo).port;
  const tiny = await startTinyproxy(t);
  const ok = await probeController(prov(port), tiny.url);
  t.equal(ok.ok, true);
  t.match(ok.detail, `connected to 127.0.0.1:${port} through the proxy ${tiny.url} in`);

  const dead = `http://127.0.0.1:${await freePort()}`;
  const bad = await probeController(prov(port), dead);
  t.equal(bad.ok, false);
  t.match(bad.detail, `127.0.0.1:${port} through the proxy ${dead}: proxy ${dead}: connection refused`);
});

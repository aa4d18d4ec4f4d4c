// nim's connectivity probe against real parts on loopback: Mosquitto with TLS
// (the test CA), a port nobody listens on (refused: the path works), a server that
// never finishes the handshake (timed out), and tinyproxy (HTTP CONNECT) in front
// of the broker or of nothing.
import * as net from 'node:net';
import t from 'tap';
import { brokerTarget, probeBroker, testHost } from '../../agents/nim/conn-tester';
import { observeHost } from '../../agents/nim/host-observer';
import { freePort } from '../lib/config-builder';
import { startTinyproxy } from '../lib/tinyproxy';
import { startMosquitto } from '../lib/mosquitto';
import { testProvisioning } from '../lib/provisioning';


t.test('the broker from the provisioning file', async (t) => {
  t.same(brokerTarget(testProvisioning('mqtt://10.0.0.1')), { host: '10.0.0.1', port: 1883, tls: false });
  t.same(brokerTarget({ ...testProvisioning('mqtts://ctl.example:9883'), broker: { url: 'mqtts://ctl.example:9883', caPem: 'PEM' } }), { host: 'ctl.example', port: 9883, tls: true, caPem: 'PEM' });
  t.equal(brokerTarget(testProvisioning('mqtts://ctl.example'))!.port, 8883);
  t.equal(brokerTarget(undefined), undefined, 'no provisioning file: no controller');
});

t.test('TLS broker, refused port, a handshake that never ends, and an HTTP proxy', async (t) => {
  const mosq = await startMosquitto({ name: 'nim' });
  t.teardown(() => mosq.cleanup());
  const target = { host: '127.0.0.1', port: mosq.port, tls: true, caPem: mosq.caPem };

  t.same(await probeBroker(target, { timeoutMs: 5000 }), { ok: true }, 'TLS handshake with the provisioning CA');
  t.same(await probeBroker(target, { localAddress: '127.0.0.1', timeoutMs: 5000 }), { ok: true }, 'bound to a local address');
  const noCa = await probeBroker({ ...target, caPem: undefined }, { timeoutMs: 5000 });
  t.equal(noCa.ok, false);
  t.match(noCa.error, /^TLS handshake failed: /, 'a broker the CA does not vouch for fails');
  t.notOk(noCa.refused);

  const closed = await freePort();
  t.match(await probeBroker({ host: '127.0.0.1', port: closed, tls: false }, { timeoutMs: 5000 }), { ok: false, refused: true, error: 'connection refused' }, 'refused: the path works, the broker does not');

  // Accepts the TCP connection and says nothing: the TLS handshake can only time out.
  const mute = net.createServer(() => {});
  await new Promise<void>((r) => mute.listen(0, '127.0.0.1', r));
  t.teardown(() => mute.close());
  const port = (mute.address() as net.AddressInfo).port;
  t.same(await probeBroker({ host: '127.0.0.1', port, tls: true }, { timeoutMs: 300 }), { ok: false, error: 'connection timed out after 0.3 s' });

  const proxy = (await startTinyproxy(t)).url;
  t.same(await probeBroker(target, { proxy, timeoutMs: 5000 }), { ok: true }, 'CONNECT through the proxy, then TLS');
  const viaProxy = await probeBroker({ host: '127.0.0.1', port: closed, tls: false }, { proxy, timeoutMs: 5000 });
  t.equal(viaProxy.ok, false);
  t.match(viaProxy.error, `proxy ${proxy} answered "HTTP/1.1 500`, 'the proxy\'s answer is named');
  t.notOk(viaProxy.refused, 'a refusal behind a proxy says nothing about the path');
  const withUser = await probeBroker({ host: '127.0.0.1', port: closed, tls: false }, { proxy: proxy.replace('http://', 'http://ops:s3cret@'), timeoutMs: 5000 });
  t.match(withUser.error, `proxy ${proxy} answered`, 'credentials in the proxy URL never appear in the error');
  t.notMatch(withUser.error, 's3cret');

  // Host mode: over the host's own routes (loopback here), which port it went through.
  const view = await observeHost('/etc/resolv.conf');
  const ok = await testHost(view, target, 5000, Date.now());
  t.match(ok, { outcome: { state: 'success' }, via: 'lo', controller: { host: '127.0.0.1', port: mosq.port, reachable: true, via: 'lo' } });
  const down = await testHost(view, { host: '127.0.0.1', port: closed, tls: false }, 5000, Date.now());
  t.equal(down.outcome.state, 'remote-wait', 'refused over the host routes: the broker is down');
  t.match(down.controller?.error, `broker 127.0.0.1:${closed}: connection refused through lo`);
});

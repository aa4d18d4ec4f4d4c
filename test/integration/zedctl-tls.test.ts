// The embedded broker over TLS: devices get the CA in their provisioning file and
// onboard over mqtts; serving MQTT in clear beyond the loopback is refused.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { freePort } from '../lib/config-builder';
import { Controller } from '../lib/controller';
import { ZEDBOX, run, start } from '../lib/proc';

t.test('zedctl serve --tls-cert: devices onboard over mqtts with the CA from their provisioning file', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zctl-tls-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
    '-keyout', key, '-out', cert, '-subj', '/CN=zedctl-test', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], { stdio: 'ignore' });
  const ctl = new Controller({ serveArgs: ['--tls-cert', cert, '--tls-key', key] });
  t.teardown(() => ctl.cleanup());
  await ctl.start();
  const prov = await ctl.addDevice('tls-1');
  t.match(prov.broker.url, /^mqtts:\/\/127\.0\.0\.1:\d+$/, 'the provisioning file names the broker over TLS');
  t.equal(prov.broker.caPem, fs.readFileSync(cert, 'utf8'), 'and carries the CA devices must trust');

  const root = path.join(dir, 'device');
  fs.mkdirSync(path.join(root, 'config'), { recursive: true });
  fs.writeFileSync(path.join(root, 'config', 'controller.json'), JSON.stringify(prov), { mode: 0o600 });
  const ok = await run(ZEDBOX, ['onboard', '--timeout', '30'], { ZEDBOX_ROOT: root });
  t.equal(ok.code, 0, `onboarded over mqtts (${ok.err.trim().split('\n').pop()})`);
  t.match(ok.out.trim(), /^[0-9a-f-]{36}$/, 'it prints its UUID');

  // zedagent's own link (its stream builder: TLS with the provisioning CA) reaches the controller too.
  const agent = start(ZEDBOX, ['zedagent'], { ZEDBOX_ROOT: root });
  t.teardown(() => { agent.child.kill('SIGKILL'); });
  const seen = await ctl.waitFor('tls-1', (v) => v.status?.state === 'online' && v.device !== undefined, 'zedagent online over mqtts', 30_000);
  t.equal(seen.status?.state, 'online', 'zedagent\'s link is up over mqtts and the controller has its device info');
  agent.child.kill('SIGTERM');
  await agent.exited;

  // Without the CA the device cannot reach the broker: TLS is checked, not merely spoken.
  const root2 = path.join(dir, 'device2');
  fs.mkdirSync(path.join(root2, 'config'), { recursive: true });
  const { caPem: _ca, ...brokerNoCa } = prov.broker;
  fs.writeFileSync(path.join(root2, 'config', 'controller.json'), JSON.stringify({ ...(await ctl.addDevice('tls-2')), broker: brokerNoCa }), { mode: 0o600 });
  const refused = await run(ZEDBOX, ['onboard', '--timeout', '3', '--max-backoff', '1'], { ZEDBOX_ROOT: root2 });
  t.equal(refused.code, 1, 'a device without the CA gives up');
  t.match(refused.err, /self[- ]signed|unable to verify|certificate/i, 'with the TLS error in its log');
});

t.test('zedctl serve refuses MQTT in clear beyond the loopback', async (t) => {
  const state = fs.mkdtempSync(path.join(os.tmpdir(), 'zctl-plain-'));
  t.teardown(() => fs.rmSync(state, { recursive: true, force: true }));
  const r = await run(ZEDBOX, ['zedctl', 'serve', '--state', state, '--listen', `0.0.0.0:${await freePort()}`, '--duration-ms', '1000']);
  t.equal(r.code, 2, 'a usage error');
  t.match(r.err, /refusing to serve MQTT in clear on 0\.0\.0\.0.*--tls-cert/, 'saying why and what to give');
});

// Signing a device config: refused with every bad field named, secrets sealed to
// the one device (and nowhere in clear), seq growing, a signature the device checks.
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { openEnvelope } from '../../api/envelope';
import { newBoxKeyPair, newSignKeyPair, verifierFor } from '../../lib/keys';
import { ConfigBodySchema, KINDS, type ConfigBody } from '../../api/messages';
import { openSecret, type Sealed } from '../../lib/secrets';
import { Value } from '@sinclair/typebox/value';
import { parseDeviceConfig } from '../../agents/zedagent/device-config';
import { resignConfig, signConfig, type SignInput } from '../../controller/config-signer';
import type { ControllerKeys } from '../../controller/state-dir';

const example = fs.readFileSync(path.join(__dirname, '../../docs/examples/device-config.json'), 'utf8');
const DEVICE_ID = 'dddddddd-1111-4222-8333-444444444444';
const deviceBox = newBoxKeyPair();
const keys: ControllerKeys = { sign: newSignKeyPair(), sealingSeed: new Uint8Array(32).fill(7) };
const NOW = new Date('2026-03-04T05:06:07.000Z');

const input = (text: string, over: Partial<SignInput> = {}): SignInput => ({
  text, device: { deviceId: DEVICE_ID, boxPublicKey: deviceBox.publicKey }, previousSeq: 0, epoch: 3, keys, now: NOW, ...over,
});

/** The example with a registry password in clear and two env secrets in the operator's marker. */
function withSecrets(): string {
  const c = JSON.parse(example);
  c.datastores[0].username = 'puller';
  c.datastores[0].password = 'registry-pass-123';
  c.apps[0].env = { GREETING: 'hello', API_KEY: { secret: 'api-key-456' } };
  c.apps[1].env = { DB_PASSWORD: { secret: 'db-pass-789' } };
  return JSON.stringify(c, null, 2);
}

t.test('a bad config is refused with every error by path, and nothing is signed', async (t) => {
  const c = JSON.parse(example);
  c.apps[1].resources.memoryMiB = 2;
  c.apps[0].volumeRefs[0].volumeId = 'not-a-uuid';
  c.apps[0].env = { OK: { secret: 42 } };
  const r = signConfig(input(JSON.stringify(c)));
  t.equal(r.ok, false);
  if (r.ok) return;
  const paths = r.errors.map((e) => e.path);
  t.ok(paths.includes('/apps/1/resources/memoryMiB'), `memoryMiB named in ${paths.join(', ')}`);
  t.ok(paths.includes('/apps/0/volumeRefs/0/volumeId'), 'volumeId named');
  t.ok(paths.includes('/apps/0/env/OK/secret'), 'a secret that is not a string is named');
  t.equal('envelope' in r, false);
});

t.test('JSON syntax errors give a line and a column', async (t) => {
  const r = signConfig(input('{\n  "version": "1",\n  "apps": [}\n'));
  t.equal(r.ok, false);
  if (!r.ok) t.match(r.errors[0]?.message, /^invalid JSON at line 3, column 12/);
});

t.test('a file for another device is refused', async (t) => {
  const c = JSON.parse(example);
  c.deviceId = '99999999-9999-4999-8999-999999999999';
  const r = signConfig(input(JSON.stringify(c)));
  t.equal(r.ok, false);
  if (!r.ok) t.match(r.errors, [{ path: '/deviceId', message: /not dddddddd-/ }]);
});

t.test('secrets are sealed to the device, open with its key, and appear nowhere in clear', async (t) => {
  const r = signConfig(input(withSecrets()));
  if (!r.ok) return t.fail(`refused: ${JSON.stringify(r.errors)}`);
  t.equal(r.sealedCount, 3);
  const signedText = r.envelope.toString();
  for (const clear of ['registry-pass-123', 'api-key-456', 'db-pass-789']) t.notOk(signedText.includes(clear), `${clear} not in the signed text`);
  t.ok(signedText.includes('hello'), 'a plain env value stays plain');

  const opened = openEnvelope(r.envelope, KINDS.config, verifierFor(keys.sign.publicKey));
  if (!opened.ok) return t.fail(opened.error);
  t.ok(Value.Check(ConfigBodySchema, opened.body), 'the body fits ConfigBodySchema');
  const body = opened.body as ConfigBody;
  const config = body.config as { deviceId: string; datastores: { password: Sealed }[]; apps: { env: Record<string, Sealed | string> }[] };
  t.equal(config.deviceId, DEVICE_ID, 'deviceId set');
  t.equal(openSecret(config.datastores[0]!.password, deviceBox.secretKey), 'registry-pass-123');
  t.equal(openSecret(config.apps[0]!.env.API_KEY as Sealed, deviceBox.secretKey), 'api-key-456');
  t.equal(config.apps[0]!.env.GREETING, 'hello');
  t.equal(openSecret(config.apps[1]!.env.DB_PASSWORD as Sealed, deviceBox.secretKey), 'db-pass-789');
  t.throws(() => openSecret(config.apps[1]!.env.DB_PASSWORD as Sealed, newBoxKeyPair().secretKey), /does not open/, 'another device cannot open it');
  t.same(parseDeviceConfig(JSON.stringify(body.config)).errors, [], 'the device accepts the sealed config');
});

t.test('seq follows the previous one, with the epoch and time given', async (t) => {
  const first = signConfig(input(example));
  const next = signConfig(input(example, { previousSeq: 41 }));
  if (!first.ok || !next.ok) return t.fail('refused');
  t.equal(first.body.seq, 1);
  t.equal(next.body.seq, 42);
  t.equal(next.body.epoch, 3);
  t.equal(next.body.issuedAt, NOW.toISOString());
  const bumped = resignConfig(next.body, 4, keys, NOW);
  t.equal(bumped.body.seq, 43);
  t.equal(bumped.body.epoch, 4);
  t.same(bumped.body.config, next.body.config, 'the same config, secrets still sealed');
  t.ok(openEnvelope(bumped.envelope, KINDS.config, verifierFor(keys.sign.publicKey)).ok);
});

t.test('the signature is the controller\'s, and a tampered body fails', async (t) => {
  const r = signConfig(input(withSecrets()));
  if (!r.ok) return t.fail('refused');
  t.equal(openEnvelope(r.envelope, KINDS.config, verifierFor(newSignKeyPair().publicKey)).ok, false, 'another key does not verify it');
  const env = JSON.parse(r.envelope.toString());
  env.body = env.body.replace('"seq":1', '"seq":99');
  t.not(env.body, JSON.parse(r.envelope.toString()).body, 'the body was changed');
  const tampered = openEnvelope(JSON.stringify(env), KINDS.config, verifierFor(keys.sign.publicKey));
  t.match(tampered, { ok: false, reason: 'signature' });
  t.match(openEnvelope(r.envelope, KINDS.info, verifierFor(keys.sign.publicKey)), { ok: false, reason: 'kind' }, 'not valid as another kind');
});

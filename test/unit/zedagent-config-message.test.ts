// What the device does with a config message from the controller: apply a signed,
// newer config for itself; ignore a repeat; refuse anything unsigned, forged,
// replayed, for another device or malformed, saying why.
import t from 'tap';
import { seal, signedBytes } from '../../api/envelope';
import { keyId, newSignKeyPair, signerFor, verifierFor } from '../../lib/keys';
import { KINDS, type ConfigBody } from '../../api/messages';
import { decideConfig } from '../../agents/zedagent/config-message';

const controller = newSignKeyPair();
const signer = signerFor(controller);
const kid = keyId(controller.publicKey);
const verifier = verifierFor(controller.publicKey);
const DEV = '11111111-2222-4333-8444-555555555555';
const OTHER = '99999999-2222-4333-8444-555555555555';

function body(seq: number, over: Partial<ConfigBody> = {}): ConfigBody {
  return { deviceId: DEV, seq, epoch: 1, issuedAt: new Date().toISOString(), config: { version: `v${seq}` }, ...over };
}

t.test('a signed, newer config for this device is applied; the same one again is a repeat', async (t) => {
  const d = decideConfig(seal(KINDS.config, body(3), signer, kid), verifier, DEV, undefined);
  t.equal(d.action, 'apply');
  if (d.action !== 'apply') return;
  t.equal(d.parsed.config?.version, 'v3');
  t.equal(d.body.seq, 3);
  const again = decideConfig(seal(KINDS.config, body(3), signer, kid), verifier, DEV, { seq: 3, bodySha256: 'x' });
  t.equal(again.action, 'refuse', 'same seq with a different body is not a repeat: refused as stale');
  const repeat = decideConfig(seal(KINDS.config, d.body, signer, kid), verifier, DEV, { seq: 3, bodySha256: d.bodySha256 });
  t.equal(repeat.action, 'repeat', 'the identical signed body (a retained message on reconnect) is ignored');
});

t.test('refusals name their reason', async (t) => {
  const applied = { seq: 5, bodySha256: 'abc' };
  const cases: Array<[string, Buffer | string, RegExp, string]> = [
    ['unsigned JSON config', JSON.stringify({ version: 'v9' }), /not a signed envelope/, 'unsigned or malformed config'],
    ['not JSON at all', 'hello', /not JSON/, 'unsigned or malformed config'],
    ['forged: signed by another key', seal(KINDS.config, body(6), signerFor(newSignKeyPair()), kid), /bad signature/, 'config with a bad signature'],
    ['replayed: an older seq', seal(KINDS.config, body(4), signer, kid), /seq 4 is not newer than the applied seq 5/, 'replayed config'],
    ['for another device', seal(KINDS.config, body(6, { deviceId: OTHER }), signer, kid), /config is for device 9999/, 'config'],
    ['an info message replayed as config', seal(KINDS.info, body(6), signer, kid), /expected a config message, got info/, 'config'],
    ['a bad device config inside', seal(KINDS.config, body(6, { config: { version: '', apps: 'x' } }), signer, kid), /./, 'config'],
  ];
  for (const [name, payload, message, what] of cases) {
    const d = decideConfig(payload, verifier, DEV, applied);
    t.equal(d.action, 'refuse', name);
    if (d.action === 'refuse') {
      t.match(d.errors[0]?.message, message, `${name}: ${d.errors[0]?.message}`);
      t.equal(d.what, what, `${name}: reported as "${what}"`);
    }
  }
  const bad = decideConfig(seal(KINDS.config, body(6, { config: { version: '', apps: 'x' } }), signer, kid), verifier, DEV, applied);
  t.ok(bad.action === 'refuse' && bad.errors.every((e) => e.path.startsWith('/config/')), 'device config errors carry paths under /config');
});

t.test('a body altered after signing fails the signature', async (t) => {
  const env = JSON.parse(seal(KINDS.config, body(6), signer, kid).toString());
  env.body = env.body.replace('"seq":6', '"seq":60');
  t.notOk(verifier.verify(signedBytes(env.kind, env.body), env.sig), 'the altered body does not verify');
  const d = decideConfig(JSON.stringify(env), verifier, DEV, undefined);
  t.equal(d.action, 'refuse');
});

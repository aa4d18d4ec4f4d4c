// The verifier's planner and signature check, without I/O.
import t from 'tap';
import nacl from 'tweetnacl';
import { checkSignature, planVerify, type VerifyFacts } from '../../agents/verifier/planner';
import type { VerifyImageConfig } from '../../pubsub/collections';

const D = 'sha256:' + 'ab'.repeat(32);
const cfg = (extra: Partial<VerifyImageConfig> = {}): VerifyImageConfig => ({ digest: D, refCount: 1, ...extra });
const facts = (extra: Partial<VerifyFacts> = {}): VerifyFacts => ({ inFlight: false, keys: [], signatureRequired: false, ...extra });
const pair = nacl.sign.keyPair();
const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');
const keys = [{ id: 'k1', ed25519: b64(pair.publicKey) }];
const sig = (digest: string, secret = pair.secretKey) => ({ keyId: 'k1', signature: b64(nacl.sign.detached(Buffer.from(digest), secret)) });

t.test('what to do for a config', async (t) => {
  t.same(planVerify(cfg({ refCount: 0 }), facts()), { action: 'delete' });
  t.same(planVerify(cfg(), facts()), { action: 'verify', signedBy: undefined });
  t.same(planVerify(cfg(), facts({ inFlight: true })), { action: 'none' });
  t.same(planVerify(cfg(), facts({ verifiedSize: 10 })), { action: 'adopt', signedBy: undefined }, 'already verified on disk');
  const verified = { digest: D, state: 'VERIFIED' as const, refCount: 1, path: '/x', sizeBytes: 10 };
  t.same(planVerify(cfg(), facts({ verifiedSize: 10, status: verified })), { action: 'none' });
  t.same(planVerify(cfg({ refCount: 2 }), facts({ verifiedSize: 10, status: verified })), { action: 'refcount', signedBy: undefined });
  t.match(planVerify(cfg({ sizeBytes: 11 }), facts({ verifiedSize: 10 })), { action: 'reject', error: /expected 11 bytes, verified file has 10/ });
  t.same(planVerify(cfg(), facts({ rejectedConfig: JSON.stringify(cfg()) })), { action: 'none' }, 'a rejected file is not retried for the same config');
  t.same(planVerify(cfg({ pendingPath: '/p/new' }), facts({ rejectedConfig: JSON.stringify(cfg()) })), { action: 'verify', signedBy: undefined }, 'a changed config is');
});

t.test('signatures', async (t) => {
  t.same(checkSignature(cfg({ signature: sig(D) }), keys, false), { ok: true, signedBy: 'k1' });
  t.same(checkSignature(cfg(), keys, false), { ok: true });
  t.same(checkSignature(cfg(), keys, true), { ok: false, error: `${D} has no signature and content.signature.required is true` });
  t.same(checkSignature(cfg({ signature: sig(D, nacl.sign.keyPair().secretKey) }), keys, false), { ok: false, error: `signature of ${D} by key "k1" does not verify` });
  t.same(checkSignature(cfg({ signature: sig('sha256:' + 'cd'.repeat(32)) }), keys, false).ok, false, 'a signature of another digest');
  t.same(checkSignature(cfg({ signature: { keyId: 'k2', signature: 'AAAA' } }), keys, false), { ok: false, error: `${D} is signed by key "k2", which is not a trusted publisher key` });
  t.match(checkSignature(cfg({ signature: sig(D) }), [{ id: 'k1', ed25519: 'AAAA' }], false), { ok: false, error: /publisher key "k1" is not a 32-byte ed25519 key/ });
  t.match(planVerify(cfg({ signature: sig(D) }), facts({ keys: [] })), { action: 'reject', error: /not a trusted publisher key/ });
  t.same(planVerify(cfg({ signature: sig(D) }), facts({ keys })), { action: 'verify', signedBy: 'k1' });
});

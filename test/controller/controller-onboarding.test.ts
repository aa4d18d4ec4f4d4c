// The onboarding decision, case by case: who gets a UUID and an account, and
// why everyone else is refused.
import t from 'tap';
import { newBoxKeyPair, newSignKeyPair } from '../../lib/keys';
import type { OnboardRequest } from '../../api/messages';
import { decideOnboarding, tokenHash, type DeviceRecord } from '../../controller/onboarding';

const NOW = '2026-01-02T03:04:05.000Z';
const LATER = '2026-01-02T04:00:00.000Z';
const ID = '11111111-2222-4333-8444-555555555555';
const sign = newSignKeyPair().publicKey;
const box = newBoxKeyPair().publicKey;

const request = (over: Partial<OnboardRequest> = {}): OnboardRequest => ({
  serial: 'SN-1', token: 'the-right-token', signPublicKey: sign, boxPublicKey: box,
  nonce: 'n'.repeat(16), time: NOW, ...over,
});
const registered: DeviceRecord = { serial: 'SN-1', state: 'registered', tokenSha256: tokenHash('the-right-token'), createdAt: NOW };
const newId = () => ID;
const noId = () => {
  throw new Error('no new UUID may be made here');
};

t.test('an unknown serial is refused and becomes pending for an operator to allow', async (t) => {
  const d = decideOnboarding(request(), undefined, NOW, noId);
  t.match(d.reply, { ok: false, code: 'not-registered' });
  t.match(d.reply, { error: /zedctl device allow SN-1/ });
  t.equal(d.record.state, 'pending');
  t.equal(d.record.serial, 'SN-1');
  t.equal(d.record.tokenSha256, undefined, 'a pending serial has no token: the token it sent proves nothing');
  t.equal(d.record.lastRefusal?.code, 'not-registered');
  t.equal(d.provision, undefined);
});

t.test('a pending serial is refused until allowed', async (t) => {
  const pending: DeviceRecord = { serial: 'SN-1', state: 'pending', createdAt: NOW };
  const d = decideOnboarding(request(), pending, LATER, noId);
  t.match(d.reply, { ok: false, code: 'pending' });
  t.equal(d.record.state, 'pending');
  t.equal(d.record.lastRequestAt, LATER);
  t.equal(d.record.createdAt, NOW, 'the first request time is kept');
  t.equal(d.provision, undefined);
});

t.test('a wrong token is refused', async (t) => {
  const d = decideOnboarding(request({ token: 'not-the-token' }), registered, NOW, noId);
  t.match(d.reply, { ok: false, code: 'bad-token' });
  t.equal(d.record.state, 'registered');
  t.equal(d.record.lastRefusal?.code, 'bad-token');
  t.equal(d.record.lastNonce, 'n'.repeat(16), 'the request is remembered, so a second delivery is not answered again');
  t.equal(d.provision, undefined);
});

t.test('the right token onboards: a new UUID, the keys recorded, an account for the UUID', async (t) => {
  const d = decideOnboarding(request({ zedboxVersion: '0.1.0' }), { ...registered, lastRefusal: { code: 'bad-token', error: 'x', time: NOW } }, LATER, newId);
  t.same(d.reply, { ok: true, deviceId: ID });
  t.match(d.record, { state: 'onboarded', deviceId: ID, signPublicKey: sign, boxPublicKey: box, brokerUsername: ID, onboardedAt: LATER, zedboxVersion: '0.1.0' });
  t.equal(d.record.lastRefusal, undefined, 'an old refusal is cleared');
  t.same(d.provision, { username: ID, role: { kind: 'device', deviceId: ID } });
});

t.test('the same device again (same keys) keeps its UUID and gets its account refreshed', async (t) => {
  const first = decideOnboarding(request(), registered, NOW, newId).record;
  const again = decideOnboarding(request({ token: 'whatever-it-has-now', nonce: 'm'.repeat(16) }), first, LATER, noId);
  t.same(again.reply, { ok: true, deviceId: ID });
  t.equal(again.record.onboardedAt, NOW, 'onboarded once');
  t.equal(again.record.lastRequestAt, LATER);
  t.same(again.provision, { username: ID, role: { kind: 'device', deviceId: ID } });
});

t.test('other keys under an onboarded serial are a conflict, even with the right token', async (t) => {
  const first = decideOnboarding(request(), registered, NOW, newId).record;
  const otherSign = decideOnboarding(request({ signPublicKey: newSignKeyPair().publicKey }), first, LATER, noId);
  t.match(otherSign.reply, { ok: false, code: 'conflict' });
  t.equal(otherSign.provision, undefined);
  t.equal(otherSign.record.signPublicKey, sign, 'the registered key stays');
  const otherBox = decideOnboarding(request({ boxPublicKey: newBoxKeyPair().publicKey }), first, LATER, noId);
  t.match(otherBox.reply, { ok: false, code: 'conflict' });
});

// zedagent's log send window (which batches go now, in seq order, a few at a
// time, again after a timeout or a refused send) and its check of the controller's acks.
import t from 'tap';
import { seal } from '../../api/envelope';
import { KINDS } from '../../api/messages';
import { keyId, newSignKeyPair, signerFor, verifierFor } from '../../lib/keys';
import { LogSendWindow, verifyLogAck } from '../../agents/zedagent/log-forwarder';

const seqs = (d: Array<{ seq: number }>): number[] => d.map((x) => x.seq);

t.test('at most `window` batches outstanding, lowest seqs first', async (t) => {
  const w = new LogSendWindow({ window: 3, resendAfterMs: 30_000, resendMaxMs: 600_000 });
  for (const s of [7, 3, 5, 4, 6]) w.add(s);
  t.same(w.due(0), [{ seq: 3, resend: false }, { seq: 4, resend: false }, { seq: 5, resend: false }]);
  t.same(w.due(10), [], 'the window is full');
  t.ok(w.ack(4));
  t.same(seqs(w.due(20)), [6], 'an ack frees one place');
  t.ok(w.ack(3));
  t.ok(w.ack(5));
  t.same(seqs(w.due(30)), [7]);
  t.notOk(w.ack(99), 'an ack for a batch not here is reported');
  t.same(w.due(40), []);
  w.add(1);
  t.same(seqs(w.due(50)), [1], 'a lower seq that appears later goes next');
});

t.test('a batch not acknowledged in time is sent again, and again when its send was refused', async (t) => {
  const w = new LogSendWindow({ window: 2, resendAfterMs: 1000, resendMaxMs: 3000 });
  w.add(1);
  w.add(2);
  w.add(3);
  t.same(seqs(w.due(0)), [1, 2]);
  t.equal(w.nextWakeAt(), 1000, 'wake when the oldest is due again');
  w.ack(2);
  t.same(seqs(w.due(500)), [3]);
  t.same(w.due(999), []);
  t.same(w.due(1000), [{ seq: 1, resend: true }], 'seq 1 timed out');
  t.equal(w.nextWakeAt(), 1500, 'seq 3 is due next');
  t.same(seqs(w.due(1500)), [3]);
  t.equal(w.nextWakeAt(), 3000, 'seq 1 waits twice as long after its second send');
  t.same(w.due(2999), []);
  t.same(seqs(w.due(3000)), [1]);
  t.equal(w.nextWakeAt(), 3500, 'seq 3 next, after 2 s');
  t.same(seqs(w.due(3500)), [3]);
  t.same(seqs(w.due(6000)), [1], 'then no more than resendMaxMs');
  t.same(w.due(6100), [], 'in flight across a reconnect: mqtt.js sends those again itself, not twice');
  w.failed(1);
  w.failed(3);
  t.same(w.due(6100), [{ seq: 1, resend: true }, { seq: 3, resend: true }], 'a refused send goes again at the next look');
  t.notOk(w.isAcked(1));
  t.ok(w.isAcked(2));
  w.remove(2);
  t.equal(w.size, 2, 'a withdrawn batch is forgotten');
});

t.test('an ack is believed only signed by the controller, in shape and for this device', async (t) => {
  const ctl = newSignKeyPair();
  const dev = 'aaaaaaaa-1111-4222-8333-444444444444';
  const verifier = verifierFor(ctl.publicKey);
  const sign = (body: unknown, keys = ctl, kind: string = KINDS.logAck): Buffer => seal(kind, body, signerFor(keys), keyId(keys.publicKey));
  const body = { deviceId: dev, seqs: [1, 2], time: '2026-05-06T07:08:09.000Z' };
  t.same(verifyLogAck(sign(body), verifier, dev), { ok: true, body });
  t.match(verifyLogAck(sign(body, newSignKeyPair()), verifier, dev), { ok: false, error: /bad signature/ });
  t.match(verifyLogAck(sign(body, ctl, KINDS.config), verifier, dev), { ok: false, error: /expected a log-ack message/ });
  t.match(verifyLogAck(sign({ ...body, deviceId: 'bbbbbbbb-1111-4222-8333-444444444444' }), verifier, dev), { ok: false, error: /for device bbbbbbbb/ });
  t.match(verifyLogAck(sign({ ...body, seqs: [] }), verifier, dev), { ok: false, error: /log-ack body: \/seqs/ });
  t.match(verifyLogAck(Buffer.from('nope'), verifier, dev), { ok: false, error: /not JSON/ });
});

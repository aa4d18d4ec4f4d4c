// The verifier on a real bus with real files: accept, tamper, wrong size,
// signatures (good, forged, unknown key, fixed later), refCount 0, a corrupt
// verified file found at start-up, and the whole way from an HTTP download.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import t, { type Test } from 'tap';
import nacl from 'tweetnacl';
import { downloader } from '../../agents/downloader/main';
import { verifier } from '../../agents/verifier/main';
import { contentStore } from '../../lib/content-store';
import {
  ConfigItemValueMapCollection, DatastoreConfigCollection, DownloaderConfigCollection, DownloaderStatusCollection,
  PublisherKeysCollection, VerifyImageConfigCollection, VerifyImageStatusCollection, defaultConfigItems, type VerifyImageConfig, type VerifyImageStatus,
} from '../../pubsub/collections';
import { HttpDatastore } from '../fixtures/http-datastore';
import { startAgents, type Harness } from '../lib/agent-harness';

const sha = (b: Buffer): string => 'sha256:' + createHash('sha256').update(b).digest('hex');
const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');


async function setup(t: Test, opts: { dirs?: Harness['dirs']; items?: Record<string, string> } = {}) {
  const h = await startAgents([verifier], { dirs: opts.dirs });
  t.teardown(() => h.stop());
  const pub = h.publisher;
  const items = await pub(ConfigItemValueMapCollection);
  items.publish('global', { items: { ...defaultConfigItems(), ...opts.items } });
  const keys = await pub(PublisherKeysCollection);
  const configs = await pub(VerifyImageConfigCollection);
  const store = contentStore(h.dirs.persist);
  fs.mkdirSync(store.pending, { recursive: true });
  /** A pending file as the downloader leaves it. */
  const pending = (body: Buffer, digest = sha(body)): string => {
    const file = path.join(store.pending, digest.slice(7));
    fs.writeFileSync(file, body);
    return file;
  };
  const want = (digest: string, extra: Partial<VerifyImageConfig> = {}): void => {
    configs.publish(digest, { digest, refCount: 1, ...extra });
  };
  const status = (digest: string, pred: (v: VerifyImageStatus | undefined) => boolean, what: string) => h.waitFor(VerifyImageStatusCollection, digest, pred, what);
  return { h, keys, configs, store, pending, want, status };
}

t.test('a good blob is moved to verified/, read-only', async (t) => {
  const { pending, want, status, store } = await setup(t);
  const body = randomBytes(5 << 20);
  const file = pending(body);
  const digest = sha(body);
  want(digest, { sizeBytes: body.length, pendingPath: file });
  const st = await status(digest, (v) => v?.state === 'VERIFIED', 'VERIFIED');
  t.equal(st?.path, path.join(store.verified, digest.slice(7)));
  t.equal(st?.sizeBytes, body.length);
  t.equal(fs.statSync(st!.path!).mode & 0o777, 0o444, 'read-only');
  t.notOk(fs.existsSync(file), 'moved out of pending');
  t.ok(fs.readFileSync(st!.path!).equals(body));
});

t.test('a tampered blob is rejected, deleted, and the error names the digests', async (t) => {
  const { pending, want, status } = await setup(t);
  const body = randomBytes(100_000);
  const digest = sha(body);
  const tampered = Buffer.from(body);
  tampered[500] = (tampered[500] as number) ^ 1;
  const file = pending(tampered, digest);
  want(digest);
  const st = await status(digest, (v) => !!v?.error, 'an error');
  t.equal(st?.state, 'INITIAL');
  t.equal(st?.error?.error, `sha256 mismatch for ${digest}: got ${sha(tampered)}`);
  t.same(st?.error?.entities, [{ type: 'blob', id: digest }]);
  t.notOk(fs.existsSync(file), 'the pending file is deleted');
});

t.test('a wrong size is rejected', async (t) => {
  const { pending, want, status } = await setup(t);
  const body = randomBytes(1000);
  const digest = sha(body);
  pending(body);
  want(digest, { sizeBytes: 1001 });
  const st = await status(digest, (v) => !!v?.error, 'an error');
  t.equal(st?.error?.error, `size mismatch for ${digest}: expected 1001 bytes, got 1000`);
});

t.test('signatures: good, forged, unknown key fixed later, required but missing', async (t) => {
  const { keys, pending, want, status } = await setup(t);
  const pair = nacl.sign.keyPair();
  const other = nacl.sign.keyPair();
  keys.publish('global', { keys: [{ id: 'acme', ed25519: b64(pair.publicKey) }] });
  const sign = (digest: string, secret: Uint8Array) => b64(nacl.sign.detached(Buffer.from(digest), secret));

  const good = randomBytes(1000);
  pending(good);
  want(sha(good), { signature: { keyId: 'acme', signature: sign(sha(good), pair.secretKey) } });
  const ok = await status(sha(good), (v) => v?.state === 'VERIFIED', 'VERIFIED');
  t.equal(ok?.signedBy, 'acme');

  const forged = randomBytes(1000);
  const forgedFile = pending(forged);
  want(sha(forged), { signature: { keyId: 'acme', signature: sign(sha(forged), other.secretKey) } });
  const bad = await status(sha(forged), (v) => !!v?.error, 'an error');
  t.equal(bad?.error?.error, `signature of ${sha(forged)} by key "acme" does not verify`);
  t.ok(fs.existsSync(forgedFile), 'the pending file is kept for a corrected config');

  const unknown = randomBytes(1000);
  pending(unknown);
  want(sha(unknown), { signature: { keyId: 'beta', signature: sign(sha(unknown), other.secretKey) } });
  const unk = await status(sha(unknown), (v) => !!v?.error, 'an error');
  t.match(unk?.error?.error, /signed by key "beta", which is not a trusted publisher key/);
  keys.publish('global', { keys: [{ id: 'acme', ed25519: b64(pair.publicKey) }, { id: 'beta', ed25519: b64(other.publicKey) }] });
  const fixed = await status(sha(unknown), (v) => v?.state === 'VERIFIED', 'VERIFIED once the key is trusted');
  t.equal(fixed?.signedBy, 'beta');
  t.equal(fixed?.error, undefined);
});

t.test('content.signature.required refuses an unsigned blob', async (t) => {
  const { pending, want, status } = await setup(t, { items: { 'content.signature.required': 'true' } });
  const body = randomBytes(1000);
  pending(body);
  want(sha(body));
  const st = await status(sha(body), (v) => !!v?.error, 'an error');
  t.match(st?.error?.error, /has no signature and content.signature.required is true/);
});

t.test('refCount 0 deletes the verified file; a vanished config only unpublishes', async (t) => {
  const { configs, pending, want, status } = await setup(t);
  const a = randomBytes(1000);
  const b = randomBytes(1000);
  pending(a);
  pending(b);
  want(sha(a));
  want(sha(b));
  const sa = await status(sha(a), (v) => v?.state === 'VERIFIED', 'a VERIFIED');
  const sb = await status(sha(b), (v) => v?.state === 'VERIFIED', 'b VERIFIED');
  want(sha(a), { refCount: 0 });
  configs.unpublish(sha(b));
  await status(sha(a), (v) => v === undefined, 'a unpublished');
  await status(sha(b), (v) => v === undefined, 'b unpublished');
  t.notOk(fs.existsSync(sa!.path!), 'refCount 0: file deleted');
  t.ok(fs.existsSync(sb!.path!), 'vanished: file kept');
});

t.test('at start-up verified files are re-hashed: good ones published, corrupt ones deleted', async (t) => {
  const first = await setup(t);
  const good = randomBytes(1000);
  const bad = randomBytes(1000);
  first.pending(good);
  first.pending(bad);
  first.want(sha(good));
  first.want(sha(bad));
  await first.status(sha(good), (v) => v?.state === 'VERIFIED', 'VERIFIED');
  const sb = await first.status(sha(bad), (v) => v?.state === 'VERIFIED', 'VERIFIED');
  const dirs = first.h.dirs;
  await first.h.stop();
  fs.chmodSync(sb!.path!, 0o644);
  fs.writeFileSync(sb!.path!, randomBytes(1000)); // corrupted while stopped
  const second = await setup(t, { dirs });
  const st = await second.status(sha(good), (v) => v?.state === 'VERIFIED', 'the good file republished');
  t.equal(st?.refCount, 0, 'with refCount 0 until volumemgr claims it');
  t.notOk(fs.existsSync(sb!.path!), 'the corrupt file is gone');
  t.equal(second.h.watch(VerifyImageStatusCollection).get(sha(bad)), undefined, 'and not published');
});

t.test('download over HTTP, then verify', async (t) => {
  const server = new HttpDatastore();
  await server.start();
  t.teardown(() => server.stop());
  const body = randomBytes(2 << 20);
  server.files.set('app.img', body);
  const h = await startAgents([downloader, verifier]);
  t.teardown(() => h.stop());
  const pub = h.publisher;
  const dsId = randomUUID();
  (await pub(DatastoreConfigCollection)).publish(dsId, { id: dsId, type: 'http', url: server.url });
  const digest = sha(body);
  (await pub(DownloaderConfigCollection)).publish(digest, { digest, kind: 'http', datastoreIds: [dsId], name: 'app.img', sizeBytes: body.length, refCount: 1, retry: 0 });
  const dl = await h.waitFor(DownloaderStatusCollection, digest, (v) => v?.state === 'DOWNLOADED', 'DOWNLOADED');
  (await pub(VerifyImageConfigCollection)).publish(digest, { digest, sizeBytes: body.length, pendingPath: dl!.path, refCount: 1 });
  const st = await h.waitFor(VerifyImageStatusCollection, digest, (v) => v?.state === 'VERIFIED', 'VERIFIED');
  t.ok(fs.readFileSync(st!.path!).equals(body), 'the verified file holds the served bytes');
});

// The downloader against real Distribution registries: resolve a tag, fetch the
// manifest and its blobs (and verify them), and the same through a registry with
// token auth (a second docker-registry whose realm is a token server in this
// process, tokens RS256-signed with a certificate made here with openssl).
import { execFile, execFileSync, spawn } from 'node:child_process';
import { createPrivateKey, randomBytes, randomUUID, sign, X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';
import { downloader } from '../../agents/downloader/main';
import { verifier } from '../../agents/verifier/main';
import {
  DatastoreConfigCollection, DownloaderConfigCollection, DownloaderStatusCollection, ResolveConfigCollection, ResolveStatusCollection,
  VerifyImageConfigCollection, VerifyImageStatusCollection, resolveKey, type Datastore,
} from '../../pubsub/collections';
import { startAgents, type Harness } from '../lib/agent-harness';
import { ensureServices } from '../lib/services';
import { freePort } from '../lib/config-builder';
import { waitUntil } from '../lib/wait';
import { settledError } from '../lib/downloader-setup';

t.setTimeout(60_000);

interface Manifest { mediaType?: string; config: { digest: string; size: number }; layers: Array<{ digest: string; size: number; mediaType: string }> }

/** Resolves `repo:tag`, fetches the manifest and every blob, verifies them all; returns the manifest's status. */
async function pullThrough(t: Test, h: Harness, ds: Datastore, repo: string, tag: string) {
  const pub = h.publisher;
  (await pub(DatastoreConfigCollection)).publish(ds.id, ds);
  const tree = randomUUID();
  (await pub(ResolveConfigCollection)).publish(resolveKey(tree, 0), { contentTreeId: tree, generation: 0, datastoreIds: [ds.id], reference: `${repo}:${tag}` });
  const resolved = await h.waitFor(ResolveStatusCollection, resolveKey(tree, 0), (v) => !!v?.digest, 'the tag resolved');
  const digest = resolved!.digest!;
  const dl = await pub(DownloaderConfigCollection);
  dl.publish(digest, { digest, kind: 'oci-manifest', datastoreIds: [ds.id], name: repo, refCount: 1, retry: 0 });
  const ms = await h.waitFor(DownloaderStatusCollection, digest, (v) => v?.state === 'DOWNLOADED', 'manifest DOWNLOADED');
  t.equal(ms?.mediaType, resolved?.mediaType, `manifest media type recorded (${ms?.mediaType})`);
  const manifest = JSON.parse(fs.readFileSync(ms!.path!, 'utf8')) as Manifest;
  const blobs = [manifest.config, ...manifest.layers];
  for (const b of blobs) dl.publish(b.digest, { digest: b.digest, kind: 'oci-blob', datastoreIds: [ds.id], name: repo, sizeBytes: b.size, refCount: 1, retry: 0 });
  const vc = await pub(VerifyImageConfigCollection);
  for (const b of [{ digest, size: undefined }, ...blobs]) {
    const st = await h.waitFor(DownloaderStatusCollection, b.digest, (v) => v?.state === 'DOWNLOADED', `blob ${b.digest} DOWNLOADED`);
    vc.publish(b.digest, { digest: b.digest, sizeBytes: b.size, pendingPath: st!.path, refCount: 1 });
    const ver = await h.waitFor(VerifyImageStatusCollection, b.digest, (v) => v?.state === 'VERIFIED' || !!v?.error, `blob ${b.digest} checked`);
    t.equal(ver?.state, 'VERIFIED', `${b.digest} verified`);
  }
  return ms;
}

t.test('resolves a tag and fetches manifest and blobs from the registry', async (t) => {
  const services = ensureServices();
  const h = await startAgents([downloader, verifier]);
  t.teardown(() => h.stop());
  const ds: Datastore = { id: randomUUID(), type: 'registry', url: `http://${services.registry}` };
  const [repo, tag] = services.baseImage.split(':') as [string, string];
  const ms = await pullThrough(t, h, ds, repo, tag);
  t.match(ms?.mediaType, /manifest/);
});

t.test('a registry with token auth: the token is fetched with the datastore credentials and reused', async (t) => {
  const services = ensureServices();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zedbox-authreg-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${dir}/key.pem`, '-out', `${dir}/cert.pem`, '-days', '1', '-subj', '/CN=zedbox-test-token'], { stdio: 'ignore' });
  const tokens = await tokenServer(fs.readFileSync(`${dir}/key.pem`, 'utf8'), fs.readFileSync(`${dir}/cert.pem`, 'utf8'), 'zed:s3cret');
  t.teardown(() => tokens.close());
  const port = await freePort();
  fs.writeFileSync(`${dir}/config.yml`, `version: 0.1
log: { level: warn }
storage: { filesystem: { rootdirectory: ${dir}/data } }
http: { addr: 127.0.0.1:${port} }
auth:
  token: { realm: "${tokens.url}/token", service: zedbox-test, issuer: zedbox-test-issuer, rootcertbundle: ${dir}/cert.pem }
`);
  const reg = spawn('docker-registry', ['serve', `${dir}/config.yml`], { stdio: 'ignore' });
  t.teardown(() => { reg.kill(); });
  await waitUntil(async () => (await fetch(`http://127.0.0.1:${port}/v2/`).catch(() => undefined))?.status === 401, 'the auth registry', 20_000);
  const repo = `authtest/busybox-${randomBytes(4).toString('hex')}`;
  // Asynchronously: the token server skopeo asks runs in this process.
  await promisify(execFile)('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', '--dest-creds', 'zed:s3cret', `docker-daemon:${services.baseImage}`, `docker://127.0.0.1:${port}/${repo}:1`]);
  tokens.requests.length = 0;

  const h = await startAgents([downloader, verifier]);
  t.teardown(() => h.stop());
  const ds: Datastore = { id: randomUUID(), type: 'registry', url: `http://127.0.0.1:${port}`, username: 'zed', password: 's3cret' };
  await pullThrough(t, h, ds, repo, '1');
  t.ok(tokens.requests.length >= 1, `tokens issued: ${tokens.requests.length}`);
  t.ok(tokens.requests.every((r) => r.authorized), 'every token request carried the datastore credentials');
  t.same(new Set(tokens.requests.map((r) => r.scope)), new Set([`repository:${repo}:pull`]), 'scope is pull on the repository');
  t.equal(tokens.requests.length, 1, 'one token reused for the tag, the manifest and every blob');
});

t.test('a registry token request with wrong credentials is a clear error', async (t) => {
  // The token server refuses: the status names the realm and the HTTP status.
  const tokens = await tokenServer('', '', 'zed:s3cret');
  t.teardown(() => tokens.close());
  const reg = http.createServer((req, res) => {
    res.writeHead(401, { 'WWW-Authenticate': `Bearer realm="${tokens.url}/token",service="x",scope="repository:a/b:pull"` }).end();
  });
  await new Promise<void>((r) => reg.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => reg.close());
  const h = await startAgents([downloader]);
  t.teardown(() => h.stop());
  const pub = h.publisher;
  const ds: Datastore = { id: randomUUID(), type: 'registry', url: `http://127.0.0.1:${(reg.address() as AddressInfo).port}`, username: 'zed', password: 'wrong' };
  (await pub(DatastoreConfigCollection)).publish(ds.id, ds);
  const tree = randomUUID();
  (await pub(ResolveConfigCollection)).publish(resolveKey(tree, 0), { contentTreeId: tree, generation: 0, datastoreIds: [ds.id], reference: 'a/b:1' });
  const st = await h.waitFor(ResolveStatusCollection, resolveKey(tree, 0), settledError, 'an error');
  t.match(st?.error?.error, new RegExp(`token from ${tokens.url}/token: HTTP 401`));
});

interface TokenRequest { scope: string | null; authorized: boolean }

async function tokenServer(keyPem: string, certPem: string, creds: string) {
  const requests: TokenRequest[] = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const authorized = req.headers.authorization === 'Basic ' + Buffer.from(creds).toString('base64');
    requests.push({ scope: url.searchParams.get('scope'), authorized });
    if (!authorized) return void res.writeHead(401).end('bad credentials');
    const access = (url.searchParams.getAll('scope')).flatMap((s) => {
      const [type, name, actions] = s.split(':');
      return [{ type, name, actions: (actions ?? '').split(',') }];
    });
    const now = Math.floor(Date.now() / 1000);
    const b64u = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const x5c = [new X509Certificate(certPem).raw.toString('base64')];
    const head = b64u({ alg: 'RS256', typ: 'JWT', x5c });
    const body = b64u({ iss: 'zedbox-test-issuer', sub: 'zed', aud: url.searchParams.get('service'), exp: now + 300, nbf: now - 10, iat: now, jti: randomUUID(), access });
    const sig = sign('sha256', Buffer.from(`${head}.${body}`), createPrivateKey(keyPem)).toString('base64url');
    res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ token: `${head}.${body}.${sig}`, expires_in: 300 }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests, close: () => new Promise((r) => server.close(r)) };
}



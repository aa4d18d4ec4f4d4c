// Test images: built here, pushed to the real test registry, runnable by the real
// engine, one unique blob set per image, removable.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { MEDIA, makeImage, removeImage } from '../lib/images';
import { ensureServices } from '../lib/services';

const exec = promisify(execFile);
const sha256File = (p: string): string => `sha256:${createHash('sha256').update(fs.readFileSync(p)).digest('hex')}`;

t.before(() => { ensureServices(); });

t.test('an image with files and a random layer is in the registry, blob files match, and it runs', async (t) => {
  const img = await makeImage({
    repo: 'fixtures/images', files: { '/www/index.html': 'hello from the test\n', '/etc/app.conf': Buffer.from('x=1\n') },
    randomBytes: 1_500_000, cmd: ['cat', '/www/index.html'],
  });
  t.teardown(() => removeImage(img));
  t.match(img.repo, /^fixtures\/images-[0-9a-f]{8}$/, 'a random suffix makes the repo unique');
  t.equal(img.ref, `${img.registry}/${img.repo}:v1`);
  t.equal(img.manifestMediaType, MEDIA.dockerManifest, 'Docker v2 schema 2 by default');

  const { stdout: raw } = await exec('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${img.ref}`]);
  t.equal(`sha256:${createHash('sha256').update(raw).digest('hex')}`, img.manifestDigest, 'the manifest digest is what the registry serves');
  t.equal(img.layers.length, 1);
  const layer = img.layers[0]!;
  t.ok(layer.size > 1_500_000, 'the random bytes did not compress away');
  t.equal(fs.statSync(img.registryBlobPath(layer.digest)).size, layer.size, 'the layer blob file has the layer size');
  t.equal(sha256File(img.registryBlobPath(layer.digest)), layer.digest, 'and its content hashes to the digest');
  t.equal(sha256File(img.registryBlobPath(img.configDigest)), img.configDigest, 'the config blob file too');

  // What a user would do: fetch it as a docker-archive, load it, run it.
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'zb-imgtest-'));
  t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
  await exec('skopeo', ['copy', '-q', '--src-tls-verify=false', `docker://${img.ref}`, `docker-archive:${tmp}/a.tar:${img.ref}`]);
  await exec('docker', ['load', '-q', '-i', `${tmp}/a.tar`]);
  const run = await exec('docker', ['run', '--rm', img.ref]);
  t.equal(run.stdout, 'hello from the test\n', 'CMD runs with the added file');
  const wc = await exec('docker', ['run', '--rm', img.ref, 'sh', '-c', 'wc -c < /random.bin; cat /etc/app.conf; ls /bin/httpd']);
  t.equal(wc.stdout.split('\n').map((l) => l.trim()).join('|'), '1500000|x=1|/bin/httpd|', 'random file, Buffer file and busybox applets are there');

  await removeImage(img);
  const head = await fetch(`${img.registryUrl}/v2/${img.repo}/manifests/${img.tag}`, { method: 'HEAD' });
  t.equal(head.status, 404, 'removed from the registry');
  await t.rejects(exec('docker', ['image', 'inspect', img.ref]), 'removed from the engine');
  await removeImage(img); // a second removal is not an error
});

t.test('two images made alike share no blob; OCI format on request', async (t) => {
  const a = await makeImage({ repo: 'fixtures/same', files: { '/f': 'same' } });
  const b = await makeImage({ repo: 'fixtures/same', files: { '/f': 'same' }, format: 'oci' });
  t.teardown(async () => { await removeImage(a); await removeImage(b); });
  t.not(a.repo, b.repo);
  t.not(a.layers[0]?.digest, b.layers[0]?.digest, 'layers differ (a nonce in each), so tampering with one hurts no other test');
  t.not(a.configDigest, b.configDigest);
  t.equal(b.manifestMediaType, MEDIA.ociManifest);
});

t.test('bad input is refused with the field named', async (t) => {
  await t.rejects(makeImage({ repo: 'fixtures/bad', files: { 'relative/path': 'x' } }), /files key "relative\/path" must be an absolute path/);
  await t.rejects(makeImage({ repo: 'Bad Repo' }), /repo "bad repo-[0-9a-f]+" is not a valid repository name/);
  await t.rejects(removeImage('no-registry-here'), /not registry\/repo:tag/);
});

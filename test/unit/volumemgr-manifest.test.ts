// Pure reading of registry references and manifests, and the image tag zedbox owns.
import t from 'tap';
import { imageRefFor, imageRepoPrefix, parseManifest, parseRegistryUrl } from '../../agents/volumemgr/manifest';

const D = (c: string): string => `sha256:${c.repeat(64)}`;

t.test('registry urls', async (t) => {
  t.same(parseRegistryUrl('apps/web:1.2'), { repository: 'apps/web', tag: '1.2' });
  t.same(parseRegistryUrl('apps/web'), { repository: 'apps/web', tag: 'latest' });
  t.same(parseRegistryUrl('localhost:5000/web'), { repository: 'localhost:5000/web', tag: 'latest' }, 'a port is not a tag');
  t.same(parseRegistryUrl(`apps/web@${D('a')}`), { repository: 'apps/web', digest: D('a') });
  t.match(parseRegistryUrl('apps/web@sha256:xyz'), { error: /not a sha256 digest/ });
});

t.test('manifests and indexes', async (t) => {
  const m = parseManifest(JSON.stringify({
    schemaVersion: 2, config: { digest: D('c'), size: 10, mediaType: 'cfg' }, layers: [{ digest: D('1'), size: 5 }, { digest: D('2'), size: 6 }],
  }), D('m'));
  t.same(m, { kind: 'manifest', config: { digest: D('c'), size: 10, mediaType: 'cfg' }, layers: [{ digest: D('1'), size: 5 }, { digest: D('2'), size: 6 }] });
  const idx = parseManifest(JSON.stringify({ manifests: [
    { digest: D('a'), platform: { os: 'linux', architecture: 'arm64' } },
    { digest: D('b'), size: 7, platform: { os: 'linux', architecture: 'amd64' } },
  ] }), D('i'));
  t.same(idx, { kind: 'index', child: { digest: D('b'), size: 7 } });
  t.match(parseManifest(JSON.stringify({ manifests: [{ digest: D('a'), platform: { os: 'windows', architecture: 'amd64' } }] }), D('i')),
    { kind: 'error', error: new RegExp(`index ${D('i')} has no linux/amd64 manifest`) });
  t.match(parseManifest('{"schemaVersion":1,"fsLayers":[]}', D('m')), { kind: 'error', error: /neither an image manifest nor an index \(schemaVersion 1\)/ });
  t.match(parseManifest('not json', D('m')), { kind: 'error', error: new RegExp(`manifest ${D('m')} cannot be read`) });
  t.match(parseManifest(JSON.stringify({ config: { digest: 'md5:x' }, layers: [] }), D('m')), { kind: 'error', error: /config: missing or bad digest/ });
});

t.test('image tags are valid Docker references under the instance prefix', async (t) => {
  t.equal(imageRepoPrefix('abc123'), 'zedbox-abc123/');
  t.equal(imageRefFor('abc123', 'My App_v2!', '0c0c0c0c-0000', D('e')), `zedbox-abc123/my-app-v2:${'e'.repeat(12)}`);
  t.equal(imageRefFor('abc123', undefined, '0C0C0C0C-0000', D('e')), `zedbox-abc123/ct-0c0c0c0c:${'e'.repeat(12)}`);
  t.equal(imageRefFor('abc123', '***', '0c0c0c0c-0000', D('e')), `zedbox-abc123/ct-0c0c0c0c:${'e'.repeat(12)}`);
});

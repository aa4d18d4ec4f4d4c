// Test images made here, without the internet: the busybox test image's files
// plus whatever a test adds, as one layer unique to the image (a marker file
// holds a random nonce, so no two images share a blob and a test may tamper with
// its own blobs in the registry's storage without touching anyone else's).
// The image is written as an OCI layout directory and pushed with skopeo to the
// test registry; the engine is not involved, so nothing of it is cached there.
import { execFile } from 'node:child_process';
import { createHash, randomBytes as cryptoRandomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import * as tar from 'tar-stream';
import { ensureServices } from './services';

const execFileP = promisify(execFile);

/** Where scripts/test-services.sh keeps the registry's storage. */
export const SERVICES_DIR = process.env.ZEDBOX_SERVICES_DIR ?? '/var/tmp/zedbox-test-services';
const BLOBS_DIR = path.join(SERVICES_DIR, 'registry/docker/registry/v2/blobs/sha256');

export const MEDIA = {
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
} as const;
const ACCEPT = [MEDIA.dockerManifest, MEDIA.ociManifest].join(', ');

export interface ImageOptions {
  /** Repository name; a random suffix is always added so every call makes a new repository. */
  repo: string;
  tag?: string;
  /** Extra files by absolute path in the image (parent directories are made). */
  files?: Record<string, string | Buffer>;
  /** Size of /random.bin, random and so incompressible: a large layer for resume and throughput tests. */
  randomBytes?: number;
  /** The image's CMD (default ["/bin/sh"]). */
  cmd?: string[];
  env?: Record<string, string>;
  /** Manifest format in the registry: Docker v2 schema 2 (default) or OCI. */
  format?: 'docker' | 'oci';
}

export interface Layer { digest: string; size: number; mediaType: string }

export interface TestImage {
  /** registry/repo:tag, as `docker pull` would name it. */
  ref: string;
  /** host:port of the registry. */
  registry: string;
  repo: string;
  tag: string;
  /** repo:tag: a content tree's url for a registry datastore. */
  repoTag: string;
  registryUrl: string;
  manifestDigest: string;
  manifestMediaType: string;
  manifestSize: number;
  configDigest: string;
  layers: Layer[];
  /** The file holding a blob in the registry's storage (to tamper with in a test). */
  registryBlobPath(digest: string): string;
}

export function registryBlobPath(digest: string): string {
  const hex = digest.replace(/^sha256:/, '');
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new Error(`registryBlobPath: not a sha256 digest: ${digest}`);
  return path.join(BLOBS_DIR, hex.slice(0, 2), hex, 'data');
}

export function uniqueSuffix(): string {
  return cryptoRandomBytes(4).toString('hex');
}

export async function makeImage(opts: ImageOptions): Promise<TestImage> {
  const { registry, baseImage } = ensureServices();
  const repo = `${opts.repo}-${uniqueSuffix()}`.toLowerCase();
  const tag = opts.tag ?? 'v1';
  if (!/^[a-z0-9]+([._/-][a-z0-9]+)*$/.test(repo)) throw new Error(`makeImage: repo "${repo}" is not a valid repository name`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zb-img-'));
  try {
    await writeOciLayout(dir, repo, tag, opts, await baseLayer(baseImage));
    const digestFile = path.join(dir, 'pushed.digest');
    const format = opts.format === 'oci' ? 'oci' : 'v2s2';
    await execFileP('skopeo', ['copy', '-q', '--dest-tls-verify=false', '--format', format, '--digestfile', digestFile,
      `oci:${dir}/layout:${tag}`, `docker://${registry}/${repo}:${tag}`], { maxBuffer: 16 << 20 });
    const manifestDigest = fs.readFileSync(digestFile, 'utf8').trim();
    return await describe(registry, repo, tag, manifestDigest);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Reads back what the registry holds, checking the digest skopeo reported. */
async function describe(registry: string, repo: string, tag: string, manifestDigest: string): Promise<TestImage> {
  const registryUrl = `http://${registry}`;
  const res = await fetch(`${registryUrl}/v2/${repo}/manifests/${manifestDigest}`, { headers: { accept: ACCEPT } });
  if (!res.ok) throw new Error(`makeImage: GET manifest ${repo}@${manifestDigest}: HTTP ${res.status}`);
  const bytes = Buffer.from(await res.arrayBuffer());
  const actual = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  if (actual !== manifestDigest) throw new Error(`makeImage: manifest of ${repo} hashes to ${actual}, skopeo said ${manifestDigest}`);
  const m = JSON.parse(bytes.toString()) as { mediaType?: string; config: { digest: string }; layers: Layer[] };
  return {
    ref: `${registry}/${repo}:${tag}`,
    registry,
    repo,
    tag,
    repoTag: `${repo}:${tag}`,
    registryUrl,
    manifestDigest,
    manifestMediaType: m.mediaType ?? res.headers.get('content-type') ?? '',
    manifestSize: bytes.length,
    configDigest: m.config.digest,
    layers: m.layers.map((l) => ({ digest: l.digest, size: l.size, mediaType: l.mediaType })),
    registryBlobPath,
  };
}

/**
 * Removes an image made here: its manifest from the registry (delete is enabled;
 * blobs stay until a registry garbage collection) and any engine image tagged
 * with its ref (a test or baseline may have loaded it). Missing is not an error.
 */
export async function removeImage(image: string | TestImage): Promise<void> {
  const ref = typeof image === 'string' ? image : image.ref;
  const m = /^([^/]+)\/(.+):([^:/]+)$/.exec(ref);
  if (!m) throw new Error(`removeImage: "${ref}" is not registry/repo:tag`);
  const [, registry, repo, tag] = m as unknown as [string, string, string, string];
  const base = `http://${registry}/v2/${repo}/manifests`;
  const head = await fetch(`${base}/${tag}`, { method: 'HEAD', headers: { accept: ACCEPT } });
  const digest = head.headers.get('docker-content-digest');
  if (head.ok && digest) {
    const del = await fetch(`${base}/${digest}`, { method: 'DELETE' });
    if (!del.ok && del.status !== 404) throw new Error(`removeImage: DELETE ${repo}@${digest}: HTTP ${del.status}`);
  } else if (head.status !== 404) {
    throw new Error(`removeImage: HEAD ${repo}:${tag}: HTTP ${head.status}`);
  }
  await execFileP('docker', ['image', 'rm', ref]).catch((err: { stderr?: string }) => {
    if (!/No such image/i.test(err.stderr ?? '')) throw err;
  });
}

// ---- the layer and the OCI layout

let baseLayerCache: Promise<Buffer> | undefined;

/** The busybox test image's single layer (an uncompressed tar), from `docker save`. */
function baseLayer(baseImage: string): Promise<Buffer> {
  baseLayerCache ??= (async () => {
    const { stdout } = await execFileP('docker', ['save', baseImage], { encoding: 'buffer', maxBuffer: 256 << 20 });
    const entries = await untar(stdout);
    const manifest = JSON.parse((entries.get('manifest.json') ?? Buffer.from('[]')).toString()) as Array<{ Layers: string[] }>;
    const layers = manifest[0]?.Layers ?? [];
    if (layers.length !== 1) throw new Error(`makeImage: ${baseImage} should have one layer, has ${layers.length}`);
    const layer = entries.get(layers[0] as string);
    if (!layer) throw new Error(`makeImage: docker save ${baseImage} lacks ${layers[0]}`);
    return layer;
  })();
  return baseLayerCache;
}

async function untar(buf: Buffer): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  const ex = tar.extract();
  ex.on('entry', (header, stream, next) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: unknown) => chunks.push(c as Buffer));
    stream.on('end', () => { out.set(header.name, Buffer.concat(chunks)); next(); });
  });
  await pipeline(async function* () { yield buf; }, ex);
  return out;
}

const norm = (name: string): string => name.replace(/^\.?\/+/, '').replace(/\/+$/, '');

/** Writes the layer tar to `file`: base entries (minus overridden ones), then the test's files. */
async function writeLayer(file: string, base: Buffer, opts: ImageOptions, nonce: string): Promise<{ digest: string; size: number }> {
  const added = new Map<string, Buffer>();
  for (const [p, content] of Object.entries(opts.files ?? {})) {
    if (!p.startsWith('/')) throw new Error(`makeImage: files key "${p}" must be an absolute path`);
    added.set(norm(p), Buffer.isBuffer(content) ? content : Buffer.from(content));
  }
  added.set('etc/zedbox-test-image', Buffer.from(`${opts.repo} ${nonce}\n`));
  const pack = tar.pack();
  const hash = createHash('sha256');
  let size = 0;
  const sink = fs.createWriteStream(file);
  const done = pipeline(pack, async function* (src: AsyncIterable<unknown>) {
    for await (const c of src) { const b = c as Buffer; hash.update(b); size += b.length; yield b; }
  }, sink);
  const baseDirs = new Set<string>();
  const ex = tar.extract();
  ex.on('entry', (header, stream, next) => {
    const name = norm(header.name);
    if (header.type === 'directory') baseDirs.add(name);
    if (added.has(name)) { stream.resume(); stream.on('end', next); return; }
    stream.pipe(pack.entry(header, (err) => next(err ?? undefined)));
  });
  await pipeline(async function* () { yield base; }, ex);
  const mtime = new Date();
  for (const [name, content] of added) {
    const parts = name.split('/');
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      if (!baseDirs.has(dir)) { baseDirs.add(dir); pack.entry({ name: `${dir}/`, type: 'directory', mode: 0o755, mtime }); }
    }
    pack.entry({ name, mode: 0o644, mtime }, content);
  }
  if (opts.randomBytes) await addRandomFile(pack, opts.randomBytes, mtime);
  pack.finalize();
  await done;
  return { digest: `sha256:${hash.digest('hex')}`, size };
}

async function addRandomFile(pack: tar.Pack, bytes: number, mtime: Date): Promise<void> {
  const chunk = 1 << 20;
  await new Promise<void>((resolve, reject) => {
    const entry = pack.entry({ name: 'random.bin', size: bytes, mode: 0o644, mtime }, (err) => (err ? reject(err) : resolve()));
    let left = bytes;
    const write = (): void => {
      while (left > 0) {
        const n = Math.min(chunk, left);
        left -= n;
        if (!entry.write(cryptoRandomBytes(n))) { entry.once('drain', write); return; }
      }
      entry.end(undefined);
    };
    write();
  });
}

function putBlob(layout: string, content: Buffer): { digest: string; size: number } {
  const hex = createHash('sha256').update(content).digest('hex');
  fs.writeFileSync(path.join(layout, 'blobs/sha256', hex), content);
  return { digest: `sha256:${hex}`, size: content.length };
}

async function writeOciLayout(dir: string, repo: string, tag: string, opts: ImageOptions, base: Buffer): Promise<void> {
  const layout = path.join(dir, 'layout');
  fs.mkdirSync(path.join(layout, 'blobs/sha256'), { recursive: true });
  const tmpLayer = path.join(dir, 'layer.tar');
  const layer = await writeLayer(tmpLayer, base, opts, uniqueSuffix());
  fs.renameSync(tmpLayer, path.join(layout, 'blobs/sha256', layer.digest.slice('sha256:'.length)));
  const created = new Date().toISOString();
  const env = Object.entries({ PATH: '/bin', ...opts.env }).map(([k, v]) => `${k}=${v}`);
  const config = putBlob(layout, Buffer.from(JSON.stringify({
    created,
    architecture: process.arch === 'arm64' ? 'arm64' : 'amd64',
    os: 'linux',
    config: { Env: env, Cmd: opts.cmd ?? ['/bin/sh'] },
    rootfs: { type: 'layers', diff_ids: [layer.digest] },
    history: [{ created, created_by: `zedbox test image ${repo}:${tag}` }],
  })));
  const manifest = putBlob(layout, Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: MEDIA.ociManifest,
    config: { mediaType: MEDIA.ociConfig, ...config },
    layers: [{ mediaType: MEDIA.ociLayer, ...layer }],
  })));
  fs.writeFileSync(path.join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  fs.writeFileSync(path.join(layout, 'index.json'), JSON.stringify({
    schemaVersion: 2,
    manifests: [{ mediaType: MEDIA.ociManifest, ...manifest, annotations: { 'org.opencontainers.image.ref.name': tag } }],
  }));
}

// Helpers for volumemgr's integration tests: registry reads, unique test
// repositories, and stand-ins for downloader and verifier (used until the real
// agents are ready; they fetch from the real registry and hash for real, so only
// the agents' own code is missing, not the work).
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { contentStore, digestHex } from '../../lib/content-store';
import { DatastoreConfigCollection } from '../../pubsub/collections/config';
import {
  DownloaderConfigCollection, DownloaderStatusCollection, ResolveConfigCollection, ResolveStatusCollection,
  VerifyImageConfigCollection, VerifyImageStatusCollection,
} from '../../pubsub/collections/content';
import type { Publication } from '../../pubsub/publication';
import type { Harness } from './agent-harness';

export const ACCEPT = [
  'application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json', 'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

/** Copies the engine's image into the registry as <repo>:<tag>. */
export function pushToRegistry(registry: string, image: string, repoTag: string): void {
  execFileSync('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', `docker-daemon:${image}`, `docker://${registry}/${repoTag}`], { stdio: 'pipe' });
}

/** Deletes a test repository's manifest (the registry runs with delete enabled; best effort). */
export async function deleteFromRegistry(registry: string, repo: string, digest: string): Promise<void> {
  await fetch(`http://${registry}/v2/${repo}/manifests/${digest}`, { method: 'DELETE' }).catch(() => undefined);
}

export async function registryGet(registry: string, repo: string, what: 'manifests' | 'blobs', ref: string): Promise<{ body: Buffer; digest: string; mediaType?: string }> {
  const res = await fetch(`http://${registry}/v2/${repo}/${what}/${ref}`, { headers: { accept: ACCEPT } });
  if (!res.ok) throw new Error(`GET ${repo}/${what}/${ref}: HTTP ${res.status}`);
  const body = Buffer.from(await res.arrayBuffer());
  return { body, digest: `sha256:${createHash('sha256').update(body).digest('hex')}`, mediaType: res.headers.get('content-type') ?? undefined };
}

export interface FakeCounters {
  downloads: number;
  verifications: number;
  deletedVerified: number;
}

interface FakeCtx {
  h: Harness;
  registry: string;
  store: ReturnType<typeof contentStore>;
  counters: FakeCounters;
  tamper?: (digest: string, body: Buffer) => Buffer;
  rsPub: Publication<typeof ResolveStatusCollection.schema>;
  dsPub: Publication<typeof DownloaderStatusCollection.schema>;
  visPub: Publication<typeof VerifyImageStatusCollection.schema>;
  seenVic: Set<string>;
}

async function fakeResolve(c: FakeCtx): Promise<void> {
  const rcs = c.h.watch(ResolveConfigCollection);
  for (const [key, rc] of rcs.getAll()) {
    if (c.rsPub.get(key)) continue;
    const at = rc.reference.lastIndexOf(':');
    const m = await registryGet(c.registry, rc.reference.slice(0, at), 'manifests', rc.reference.slice(at + 1));
    c.rsPub.publish(key, { contentTreeId: rc.contentTreeId, generation: rc.generation, reference: rc.reference, digest: m.digest, retryCount: 0 });
  }
  for (const k of c.rsPub.keys()) if (!rcs.get(k)) c.rsPub.unpublish(k);
}

async function fakeDownload(c: FakeCtx): Promise<void> {
  const dcs = c.h.watch(DownloaderConfigCollection);
  const datastores = c.h.watch(DatastoreConfigCollection);
  for (const [d, dc] of dcs.getAll()) {
    const file = path.join(c.store.pending, digestHex(d));
    const st = c.dsPub.get(d);
    if (dc.refCount === 0) {
      fs.rmSync(file, { force: true });
      if (st) c.dsPub.unpublish(d);
      continue;
    }
    if (st && st.retry === dc.retry) continue;
    // One tick at a time (the loop awaits it), so a download never starts twice.
    const got = dc.kind === 'http'
      ? { body: Buffer.from(await (await fetch(`${datastores.get(dc.datastoreIds[0] as string)?.url}/${dc.name}`)).arrayBuffer()) }
      : await registryGet(c.registry, dc.name, dc.kind === 'oci-manifest' ? 'manifests' : 'blobs', d);
    const body = c.tamper ? c.tamper(d, got.body) : got.body;
    fs.writeFileSync(file, body);
    c.counters.downloads++;
    c.dsPub.publish(d, { digest: d, state: 'DOWNLOADED', refCount: dc.refCount, retry: dc.retry, currentBytes: body.length, totalBytes: body.length, path: file, retryCount: 0 });
  }
  for (const d of c.dsPub.keys()) if (!dcs.get(d)) c.dsPub.unpublish(d);
}

function fakeVerify(c: FakeCtx): void {
  const vics = c.h.watch(VerifyImageConfigCollection);
  for (const [d, vic] of vics.getAll()) {
    const vfile = path.join(c.store.verified, digestHex(d));
    const cur = c.visPub.get(d);
    if (vic.refCount === 0) {
      if (fs.existsSync(vfile)) { fs.rmSync(vfile, { force: true }); c.counters.deletedVerified++; }
      if (cur) c.visPub.unpublish(d);
      continue;
    }
    if (cur) {
      if (cur.state === 'VERIFIED') c.visPub.publish(d, { ...cur, refCount: vic.refCount });
      continue;
    }
    if (!fs.existsSync(vfile)) {
      const pending = vic.pendingPath ?? path.join(c.store.pending, digestHex(d));
      const body = fs.readFileSync(pending);
      const got = `sha256:${createHash('sha256').update(body).digest('hex')}`;
      c.counters.verifications++;
      if (got !== d) {
        fs.rmSync(pending, { force: true });
        c.visPub.publish(d, { digest: d, state: 'INITIAL', refCount: vic.refCount, error: { error: `sha256 mismatch for ${d}: got ${got}`, time: new Date().toISOString(), severity: 'error' } });
        continue;
      }
      fs.renameSync(pending, vfile);
      fs.chmodSync(vfile, 0o444);
    }
    c.visPub.publish(d, { digest: d, state: 'VERIFIED', refCount: vic.refCount, path: vfile, sizeBytes: fs.statSync(vfile).size });
  }
  // A config that vanished removes its status (never the file); start-up entries wait for a config.
  for (const d of c.visPub.keys()) if (!vics.get(d) && c.seenVic.has(d)) { c.visPub.unpublish(d); c.seenVic.delete(d); }
  for (const d of vics.keys()) c.seenVic.add(d);
}

/**
 * Stand-in downloader and verifier: they answer volumemgr's configs as the real
 * agents are specified to (content.ts), including the start-up scan (verified
 * files published VERIFIED with refCount 0, then restarted) and refCount 0 deletes.
 */
export async function startFakeContentAgents(h: Harness, registry: string, opts: { tamper?: (digest: string, body: Buffer) => Buffer } = {}): Promise<{ counters: FakeCounters; stop(): void }> {
  const store = contentStore(h.dirs.persist);
  fs.mkdirSync(store.pending, { recursive: true });
  fs.mkdirSync(store.verified, { recursive: true });
  const c: FakeCtx = {
    h, registry, store, tamper: opts.tamper, seenVic: new Set(),
    counters: { downloads: 0, verifications: 0, deletedVerified: 0 },
    dsPub: await h.publisher(DownloaderStatusCollection),
    rsPub: await h.publisher(ResolveStatusCollection),
    visPub: await h.publisher(VerifyImageStatusCollection),
  };
  for (const f of fs.readdirSync(store.verified)) {
    const p = path.join(store.verified, f);
    c.visPub.publish(`sha256:${f}`, { digest: `sha256:${f}`, state: 'VERIFIED', refCount: 0, path: p, sizeBytes: fs.statSync(p).size });
  }
  c.dsPub.signalRestarted();
  c.rsPub.signalRestarted();
  c.visPub.signalRestarted();
  let stopped = false;
  const loop = async (): Promise<void> => {
    while (!stopped) {
      try {
        await fakeResolve(c);
        await fakeDownload(c);
        fakeVerify(c);
      } catch (err) {
        console.error('fake content agents:', err);
      }
      await new Promise((r) => setTimeout(r, 30));
    }
  };
  void loop();
  return { counters: c.counters, stop: () => { stopped = true; } };
}

/**
 * An image only this test has: one layer with a random file /id, on top of the
 * files of `base` when given (so it still runs busybox), made with `docker import`.
 */
export function makeUniqueImage(tag: string, base?: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vm-img-'));
  try {
    const tarFile = path.join(dir, 'rootfs.tar');
    if (base) {
      const cid = execFileSync('docker', ['create', base, 'true'], { encoding: 'utf8' }).trim();
      try { execFileSync('docker', ['export', '-o', tarFile, cid]); } finally { execFileSync('docker', ['rm', '-f', cid], { stdio: 'ignore' }); }
    }
    fs.writeFileSync(path.join(dir, 'id'), randomBytes(16).toString('hex'));
    execFileSync('tar', ['-C', dir, base ? '-rf' : '-cf', tarFile, 'id']);
    return execFileSync('docker', ['import', '--change', 'CMD ["sh"]', tarFile, tag], { encoding: 'utf8' }).trim();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

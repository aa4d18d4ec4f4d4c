// Content pipeline throughput: the downloader's fetch path (HTTP client, Range
// logic, stall timer, batched writes, fsync, rename) against `curl -o`
// of the same 256 MiB file from the same loopback server, and the verifier's
// hashing against `sha256sum`, each beside its baseline in the same run.
// Run alone: npx tsx bench/content.ts
import { execFile, fork } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { Fetcher } from '../agents/downloader/fetch-driver';
import { HttpClient } from '../agents/downloader/http-driver';
import { PendingStore } from '../agents/downloader/store-driver';
import { hashFile } from '../agents/verifier/store-driver';
import { HttpDatastore } from '../test/fixtures/http-datastore';

const SIZE = 256 << 20;
const ROUNDS = 5;
const TARGET = 0.9;
// Asynchronous: the server curl reads from runs in this process.
const run = promisify(execFile);

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const mibps = (secs: number): string => `${(SIZE / 2 ** 20 / secs).toFixed(0)} MiB/s`;
const mark = (ok: boolean): string => (ok ? 'PASS' : 'FAIL');

function fsyncFile(file: string): void {
  const fd = fs.openSync(file, 'r+');
  try { fs.fsyncSync(fd); } finally { fs.closeSync(fd); }
}

/** The file server runs in its own process so it does not share the downloader's event loop (curl does not either). */
async function startServer(file: string): Promise<{ url: string; stop(): void }> {
  const child = fork(__filename, ['serve', file], { execArgv: process.execArgv, stdio: 'inherit' });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('message', (m) => resolve(Number(m)));
    child.once('exit', (code) => reject(new Error(`file server exited (${code})`)));
  });
  return { url: `http://127.0.0.1:${port}`, stop: () => child.kill() };
}

/** Interleaved rounds of curl and the downloader fetching the same file into `dir`; seconds each. */
async function downloads(dir: string, url: string, digest: string): Promise<{ ours: number[]; curl: number[]; file: string }> {
  const store = new PendingStore(path.join(dir, 'pending'));
  const fetcher = new Fetcher(store, new HttpClient());
  const ds = { id: randomUUID(), type: 'http' as const, url };
  const curlOut = path.join(dir, 'curl.bin');
  const ours: number[] = [];
  const curl: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    // curl writes and we fsync it too, as the downloader does before it calls a file complete.
    // Each timing starts with no dirty pages left by the one before (they would be flushed inside it).
    await run('sync', []);
    let t0 = performance.now();
    await run('curl', ['-sS', '-o', curlOut, `${url}/big.bin`]);
    fsyncFile(curlOut);
    curl.push((performance.now() - t0) / 1000);
    fs.rmSync(curlOut);
    store.removeAll(digest);
    await run('sync', []);
    t0 = performance.now();
    await fetcher.fetch({
      config: { digest, kind: 'http', datastoreIds: [ds.id], name: 'big.bin', sizeBytes: SIZE, refCount: 1, retry: 0 },
      datastores: [ds], stallMs: 60_000, reserveBytes: 0, signal: new AbortController().signal, onProgress: () => undefined,
    });
    ours.push((performance.now() - t0) / 1000);
  }
  return { ours, curl, file: store.completePath(digest) };
}

/** Where the disk is out of the picture: the HTTP client and write path alone. */
const MEMORY_DIR = '/dev/shm';

export async function benchContent(): Promise<string[]> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zedbox-bench-content-'));
  const shm = fs.existsSync(MEMORY_DIR) ? fs.mkdtempSync(path.join(MEMORY_DIR, 'zedbox-bench-content-')) : undefined;
  const body = randomBytes(SIZE);
  const digest = 'sha256:' + createHash('sha256').update(body).digest('hex');
  fs.writeFileSync(path.join(dir, 'big.bin'), body);
  const server = await startServer(path.join(dir, 'big.bin'));
  try {
    const disk = await downloads(dir, server.url, digest);
    const mem = shm ? await downloads(shm, server.url, digest) : undefined;
    if (shm) fs.rmSync(shm, { recursive: true, force: true });
    const hashOurs: number[] = [];
    const hashSum: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      let t0 = performance.now();
      await run('sha256sum', [disk.file]);
      hashSum.push((performance.now() - t0) / 1000);
      t0 = performance.now();
      const got = await hashFile(disk.file);
      hashOurs.push((performance.now() - t0) / 1000);
      if (got.digest !== digest) throw new Error('hashFile gave the wrong digest');
    }
    const line = (what: string, d: { ours: number[]; curl: number[] }): string => {
      const ratio = median(d.curl) / median(d.ours);
      return `=> download ${what}: downloader ${mibps(median(d.ours))}, curl -o ${mibps(median(d.curl))}: ratio ${ratio.toFixed(2)} (target >= ${TARGET}) ${mark(ratio >= TARGET)}`;
    };
    const vr = median(hashSum) / median(hashOurs);
    return [
      `content: 256 MiB from a loopback HTTP server, median of ${ROUNDS} interleaved rounds (both fsync the file)`,
      line('to disk', disk),
      ...(mem ? [line(`to ${MEMORY_DIR} (no disk)`, mem)] : []),
      `=> verify: verifier ${mibps(median(hashOurs))}, sha256sum ${mibps(median(hashSum))}: ratio ${vr.toFixed(2)} (target >= ${TARGET}) ${mark(vr >= TARGET)}`,
    ];
  } finally {
    server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
    if (shm) fs.rmSync(shm, { recursive: true, force: true });
  }
}

async function serve(file: string): Promise<void> {
  const server = new HttpDatastore();
  server.files.set('big.bin', fs.readFileSync(file));
  await server.start();
  process.send?.(server.port);
  process.on('disconnect', () => process.exit(0));
}

if (require.main === module && process.argv[2] === 'serve') {
  void serve(process.argv[3] as string);
} else if (require.main === module) {
  benchContent().then((lines) => console.log(lines.join('\n')), (err) => {
    console.error(err);
    process.exit(1);
  });
}

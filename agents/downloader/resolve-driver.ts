// Resolves a registry tag to its manifest digest: HEAD the manifest with the
// manifest Accept header and read Docker-Content-Digest; without that header,
// GET it and hash the body.
import { createHash } from 'node:crypto';
import type { Datastore } from '../../pubsub/collections/config';
import { readAll, type HttpClient } from './http-driver';
import { parseReference, resolveSource } from './sources';

export interface Resolved {
  digest: string;
  mediaType?: string;
}

export async function resolveTag(client: HttpClient, reference: string, datastores: Array<Datastore | undefined>, ids: readonly string[], signal: AbortSignal): Promise<Resolved> {
  const ref = parseReference(reference);
  if (ref.digest) return { digest: ref.digest };
  const problems: string[] = [];
  for (const [i, ds] of datastores.entries()) {
    if (!ds) {
      problems.push(`datastore ${ids[i]} is not configured`);
      continue;
    }
    try {
      return await resolveAt(client, ref, ds, signal);
    } catch (err) {
      if (signal.aborted) throw err;
      problems.push((err as Error).message);
    }
  }
  throw new Error(`resolving ${reference}: ${problems.join('; ')}`);
}

async function resolveAt(client: HttpClient, ref: ReturnType<typeof parseReference>, ds: Datastore, signal: AbortSignal): Promise<Resolved> {
  const src = resolveSource(ref, ds);
  const head = await client.request(ds, src.url, { method: 'HEAD', headers: src.headers, scope: src.scope, signal });
  head.resume();
  const mediaType = String(head.headers['content-type'] ?? '').split(';')[0] || undefined;
  const digest = String(head.headers['docker-content-digest'] ?? '');
  if (/^sha256:[0-9a-f]{64}$/.test(digest)) return { digest, mediaType };
  const res = await client.request(ds, src.url, { headers: src.headers, scope: src.scope, signal });
  const body = await readAll(res);
  return { digest: 'sha256:' + createHash('sha256').update(body).digest('hex'), mediaType };
}

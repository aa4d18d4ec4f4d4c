// HTTP(S) requests for the downloader: redirects followed by hand (so the
// Authorization header is dropped when the host changes), registry auth
// (anonymous first; Bearer token or Basic on a 401 challenge, tokens cached per
// datastore and scope until they expire), and per-datastore CA certificates.
import * as http from 'node:http';
import * as https from 'node:https';
import type { MaybeSealedString } from '../../lib/secrets';
import type { Datastore } from '../../pubsub/collections/config';

export class HttpError extends Error {
  constructor(message: string, readonly status?: number, readonly headers?: http.IncomingHttpHeaders) {
    super(message);
  }
}

export interface RequestOptions {
  method?: 'GET' | 'HEAD';
  headers?: Record<string, string>;
  /** The registry scope to ask a token for ("repository:<name>:pull"). */
  scope?: string;
  signal?: AbortSignal;
}

interface CachedToken {
  token: string;
  expiresAt: number;
}

const MAX_REDIRECTS = 5;

export class HttpClient {
  private readonly tokens = new Map<string, CachedToken>();
  private readonly agents = new Map<string, https.Agent>();

  /** openSecret opens a password sealed to the device, at the moment it is sent. */
  constructor(private readonly openSecret: (v: MaybeSealedString) => string = plainOnly) {}

  /** A response with a 2xx status (body unread), or throws HttpError naming the URL and status. */
  async request(ds: Datastore, url: string, opts: RequestOptions = {}): Promise<http.IncomingMessage> {
    let auth = this.cachedAuth(ds, opts.scope);
    for (let attempt = 0; ; attempt++) {
      const res = await this.follow(ds, url, { ...opts.headers, ...(auth ? { Authorization: auth } : {}) }, opts);
      if (res.statusCode === 401 && attempt === 0) {
        const challenge = String(res.headers['www-authenticate'] ?? '');
        res.resume();
        auth = await this.answerChallenge(ds, challenge, opts);
        continue;
      }
      if ((res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 300) return res;
      // The body only decorates the message, and may not arrive whole: Distribution's 416 declares the
      // blob's Content-Length, sends 33 bytes and closes ("aborted"). The status must survive that.
      const text = await readSmall(res, 512, true);
      throw new HttpError(`${opts.method ?? 'GET'} ${url}: HTTP ${res.statusCode}${text ? ': ' + text : ''}`, res.statusCode, res.headers);
    }
  }

  private cachedAuth(ds: Datastore, scope: string | undefined): string | undefined {
    const cached = this.tokens.get(`${ds.id} ${scope ?? ''}`);
    if (cached && cached.expiresAt > Date.now()) return `Bearer ${cached.token}`;
    return undefined;
  }

  private async answerChallenge(ds: Datastore, challenge: string, opts: RequestOptions): Promise<string> {
    const scheme = challenge.split(' ')[0]?.toLowerCase();
    if (scheme === 'basic') {
      if (ds.username === undefined) throw new HttpError(`datastore ${ds.id} asks for credentials (Basic) and has none`, 401);
      return basic(ds, this.openSecret);
    }
    if (scheme !== 'bearer') throw new HttpError(`datastore ${ds.id}: unsupported auth challenge "${challenge}"`, 401);
    const params = parseChallenge(challenge);
    if (!params.realm) throw new HttpError(`datastore ${ds.id}: Bearer challenge without a realm`, 401);
    const tokenUrl = new URL(params.realm);
    if (params.service) tokenUrl.searchParams.set('service', params.service);
    const scope = params.scope ?? opts.scope;
    if (scope) tokenUrl.searchParams.set('scope', scope);
    const headers: Record<string, string> = ds.username !== undefined ? { Authorization: basic(ds, this.openSecret) } : {};
    const res = await this.follow(ds, tokenUrl.toString(), headers, { signal: opts.signal });
    const body = await readSmall(res, 64 * 1024);
    if (res.statusCode !== 200) throw new HttpError(`token from ${params.realm}: HTTP ${res.statusCode}: ${body}`, res.statusCode);
    const parsed = JSON.parse(body) as { token?: string; access_token?: string; expires_in?: number };
    const token = parsed.token ?? parsed.access_token;
    if (!token) throw new HttpError(`token from ${params.realm}: no token in the answer`);
    // Registries default to 60 s; renew 10 s early.
    const ttl = Math.max(0, (parsed.expires_in ?? 60) - 10) * 1000;
    this.tokens.set(`${ds.id} ${opts.scope ?? ''}`, { token, expiresAt: Date.now() + ttl });
    return `Bearer ${token}`;
  }

  private async follow(ds: Datastore, url: string, headers: Record<string, string>, opts: RequestOptions): Promise<http.IncomingMessage> {
    let current = new URL(url);
    const origin = current.host;
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      const sameHost = current.host === origin;
      const hdrs = sameHost ? headers : withoutAuth(headers);
      const res = await this.once(ds, current, opts.method ?? 'GET', hdrs, opts.signal);
      const location = res.headers.location;
      if (res.statusCode && res.statusCode >= 300 && res.statusCode < 400 && location) {
        res.resume();
        current = new URL(location, current);
        continue;
      }
      return res;
    }
    throw new HttpError(`${url}: more than ${MAX_REDIRECTS} redirects`);
  }

  private once(ds: Datastore, url: URL, method: string, headers: Record<string, string>, signal?: AbortSignal): Promise<http.IncomingMessage> {
    return new Promise((resolve, reject) => {
      const secure = url.protocol === 'https:';
      const mod = secure ? https : http;
      const agent = secure && ds.caPem ? this.agentFor(ds) : undefined;
      const req = mod.request(url, { method, headers, agent, signal }, resolve);
      req.on('error', (err) => reject(new HttpError(`${method} ${url.href}: ${err.message}`)));
      req.end();
    });
  }

  private agentFor(ds: Datastore): https.Agent {
    let agent = this.agents.get(ds.id);
    if (!agent) {
      agent = new https.Agent({ ca: ds.caPem, keepAlive: true });
      this.agents.set(ds.id, agent);
    }
    return agent;
  }
}

function basic(ds: Datastore, open: (v: MaybeSealedString) => string): string {
  let password = '';
  try {
    password = ds.password === undefined ? '' : open(ds.password);
  } catch (err) {
    throw new HttpError(`datastore ${ds.id}: its password cannot be used: ${(err as Error).message}`);
  }
  return 'Basic ' + Buffer.from(`${ds.username ?? ''}:${password}`).toString('base64');
}

function plainOnly(v: MaybeSealedString): string {
  if (typeof v === 'string') return v;
  throw new Error('sealed secrets need the device keys');
}

function withoutAuth(headers: Record<string, string>): Record<string, string> {
  const { Authorization: _drop, ...rest } = headers;
  return rest;
}

/** key="value" pairs of a WWW-Authenticate header. */
export function parseChallenge(header: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of header.matchAll(/(\w+)="([^"]*)"/g)) out[(m[1] as string).toLowerCase()] = m[2] as string;
  return out;
}

/** A small body as text; with `partialOk`, what arrived before the connection failed. */
async function readSmall(res: http.IncomingMessage, limit = 512, partialOk = false): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of res as AsyncIterable<Buffer>) {
      if (size < limit) chunks.push(chunk);
      size += chunk.length;
    }
  } catch (err) {
    if (!partialOk) throw err;
  }
  return Buffer.concat(chunks).toString('utf8').slice(0, limit).trim();
}

/** Reads a whole (small) body. */
export async function readAll(res: http.IncomingMessage, limit = 4 << 20): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new HttpError(`response larger than ${limit} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

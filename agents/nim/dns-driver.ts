// The resolver file nim writes name servers to: /etc/resolv.conf, or the file
// ZEDBOX_RESOLV_CONF names (tests point it at a temporary file). Written whole and
// atomically; what was there before nim first wrote it is kept so it can be put back.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomicSync } from '../../lib/atomic-file';

export function resolvConfPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.ZEDBOX_RESOLV_CONF || '/etc/resolv.conf';
}

export function parseResolvConf(text: string): { servers: string[]; search: string[] } {
  const servers: string[] = [];
  const search: string[] = [];
  for (const line of text.split('\n')) {
    const [word, ...rest] = line.trim().split(/\s+/);
    if (word === 'nameserver' && rest[0]) servers.push(rest[0]);
    else if ((word === 'search' || word === 'domain') && rest.length) search.push(...rest);
  }
  return { servers, search };
}

export function readResolvConf(file: string): { servers: string[]; search: string[] } {
  const text = readRaw(file);
  return text === null ? { servers: [], search: [] } : parseResolvConf(text);
}

/** The file's text, or null when it does not exist. */
export function readRaw(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

export function renderResolvConf(servers: readonly string[], search: readonly string[]): string {
  return [
    '# Written by zedbox nim from the port configuration in use; nim rewrites it.',
    ...(search.length ? [`search ${search.join(' ')}`] : []),
    ...servers.map((s) => `nameserver ${s}`),
    '',
  ].join('\n');
}

/** Replaces the file (null: removes it). Resolvers of every user must read it, hence 0644. */
export function writeResolvConf(file: string, text: string | null): void {
  if (text === null) {
    fs.rmSync(file, { force: true });
    return;
  }
  if (readRaw(file) === text) return;
  try {
    writeFileAtomicSync(file, text);
  } catch (err) {
    // A bind-mounted resolv.conf (in a container) cannot be renamed over: write it in place.
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EBUSY' && code !== 'EXDEV') throw err;
    fs.rmSync(path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`), { force: true });
    fs.writeFileSync(file, text);
  }
  fs.chmodSync(file, 0o644);
}

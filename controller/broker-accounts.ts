// The broker accounts the controller hands out, whichever broker enforces them:
// the embedded one checks these records itself; with Mosquitto they are pushed
// into its dynamic-security plugin. Passwords are stored only as scrypt hashes.
import { randomBytes, scrypt, scryptSync, timingSafeEqual } from 'node:crypto';
import type { BrokerRole } from './acl';

export interface BrokerAccount {
  username: string;
  role: BrokerRole;
  /** scrypt$<salt b64>$<hash b64> */
  passwordHash: string;
}

/** Where the broker's accounts live and how they are changed: the embedded store, or Mosquitto's dynsec. */
export interface BrokerProvisioner {
  /** Creates or replaces the account (password and role). Idempotent. */
  upsert(username: string, password: string, role: BrokerRole): Promise<void>;
  remove(username: string): Promise<void>;
}

/** What the embedded broker asks when a client connects. */
export interface AccountLookup {
  lookup(username: string): BrokerAccount | undefined;
}

export function hashPassword(password: string): string {
  const salt = randomBytes(16);
  const hash = scryptSync(password, salt, 32, { N: 1 << 14 });
  return `scrypt$${salt.toString('base64')}$${hash.toString('base64')}`;
}

export function checkPassword(password: string, stored: string): boolean {
  const [scheme, saltB64, hashB64] = stored.split('$');
  if (scheme !== 'scrypt' || !saltB64 || !hashB64) return false;
  const want = Buffer.from(hashB64, 'base64');
  const got = scryptSync(password, Buffer.from(saltB64, 'base64'), want.length, { N: 1 << 14 });
  return want.length === got.length && timingSafeEqual(want, got);
}

/** checkPassword off the event loop (libuv's pool): a broker must not stall on a storm of logins. */
export async function checkPasswordAsync(password: string, stored: string): Promise<boolean> {
  const [scheme, saltB64, hashB64] = stored.split('$');
  if (scheme !== 'scrypt' || !saltB64 || !hashB64) return false;
  const want = Buffer.from(hashB64, 'base64');
  const got = await new Promise<Buffer>((resolve, reject) => {
    scrypt(password, Buffer.from(saltB64, 'base64'), want.length, { N: 1 << 14 }, (err, key) => (err ? reject(err) : resolve(key)));
  });
  return want.length === got.length && timingSafeEqual(want, got);
}

/** A fresh random password for a broker account (192 bits, URL-safe). */
export function newPassword(): string {
  return randomBytes(24).toString('base64url');
}

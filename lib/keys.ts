// ed25519 and x25519 keys as the controller API carries them (base64 of the raw
// 32-byte keys), and signing with them. tweetnacl makes the keys and does the
// boxes; signatures go through Node's own ed25519, about 100 times faster on
// this hardware with the same keys and byte-identical signatures (bench/fleet.ts
// measures both; a tweetnacl signer is kept for the comparison and the tests).
import { createPrivateKey, createPublicKey, sign as nodeSign, verify as nodeVerify, type KeyObject } from 'node:crypto';
import { Type } from '@sinclair/typebox';
import nacl from 'tweetnacl';

/** A 32-byte key as the API carries it: base64, 44 characters. */
export const Key32B64 = Type.String({ minLength: 44, maxLength: 44 });

export interface SignKeyPair {
  /** base64 of the 32-byte ed25519 public key. */
  publicKey: string;
  /** base64 of the 32-byte seed (tweetnacl's secret key is seed‖public). */
  seed: string;
}

export interface BoxKeyPair {
  /** base64 of the 32-byte x25519 public key. */
  publicKey: string;
  secretKey: string;
}

export function newSignKeyPair(): SignKeyPair {
  const seed = nacl.randomBytes(32);
  const kp = nacl.sign.keyPair.fromSeed(seed);
  return { publicKey: b64(kp.publicKey), seed: b64(seed) };
}

export function newBoxKeyPair(): BoxKeyPair {
  const kp = nacl.box.keyPair();
  return { publicKey: b64(kp.publicKey), secretKey: b64(kp.secretKey) };
}

const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

export interface Signer {
  readonly publicKey: string;
  sign(data: Buffer): string;
}

export interface Verifier {
  verify(data: Buffer, signatureB64: string): boolean;
}

/** Node's ed25519 over a tweetnacl seed. */
export function signerFor(kp: SignKeyPair): Signer {
  const key = createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, fromB64(kp.seed, 32, 'seed')]), format: 'der', type: 'pkcs8' });
  return { publicKey: kp.publicKey, sign: (data) => nodeSign(null, data, key).toString('base64') };
}

const verifierCache = new Map<string, KeyObject>();

/** Node's ed25519 verify; key objects are cached per public key (a controller verifies many devices). */
export function verifierFor(publicKeyB64: string): Verifier {
  let key = verifierCache.get(publicKeyB64);
  if (!key) {
    key = createPublicKey({ key: Buffer.concat([SPKI_PREFIX, fromB64(publicKeyB64, 32, 'public key')]), format: 'der', type: 'spki' });
    if (verifierCache.size > 100_000) verifierCache.clear();
    verifierCache.set(publicKeyB64, key);
  }
  const k = key;
  return {
    verify(data, sig) {
      const s = Buffer.from(sig, 'base64');
      return s.length === 64 && nodeVerify(null, data, k, s);
    },
  };
}

/** The same operations in pure JavaScript (tweetnacl): for the benchmark and to prove both agree. */
export function naclSignerFor(kp: SignKeyPair): Signer {
  const secret = nacl.sign.keyPair.fromSeed(fromB64(kp.seed, 32, 'seed')).secretKey;
  return { publicKey: kp.publicKey, sign: (data) => b64(nacl.sign.detached(data, secret)) };
}

export function naclVerifierFor(publicKeyB64: string): Verifier {
  const pub = fromB64(publicKeyB64, 32, 'public key');
  return {
    verify(data, sig) {
      const s = Buffer.from(sig, 'base64');
      return s.length === 64 && nacl.sign.detached.verify(data, s, pub);
    },
  };
}

/** A short stable name for a public key: first 16 hex of its sha512 (shown in logs, never secret). */
export function keyId(publicKeyB64: string): string {
  return Buffer.from(nacl.hash(fromB64(publicKeyB64, 32, 'public key'))).toString('hex').slice(0, 16);
}

export function b64(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64');
}

export function fromB64(text: string, length: number, what: string): Uint8Array {
  const bytes = Buffer.from(text, 'base64');
  if (bytes.length !== length) throw new Error(`${what} must be ${length} bytes of base64, got ${bytes.length}`);
  return new Uint8Array(bytes);
}

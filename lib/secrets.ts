// Secrets in a config (environment values, datastore passwords) travel sealed to
// the device's x25519 key and stay sealed on the bus, in checkpoints and in
// info; the agent that uses one opens it in memory at the moment of use.
// Sealing is deterministic per (sealing key, device, plaintext), so re-sending
// an unchanged secret gives the same bytes and does not look like a change
// (which would restart the app); the price is that equal values look equal.
import { createHash, createHmac } from 'node:crypto';
import { Type, type Static } from '@sinclair/typebox';
import nacl from 'tweetnacl';
import { b64, fromB64 } from './keys';

export const SEALED_ALG = 'x25519-xsalsa20-poly1305';

export const SealedSchema = Type.Object(
  {
    sealed: Type.Object(
      {
        alg: Type.Literal(SEALED_ALG),
        /** base64 ephemeral x25519 public key. */
        epk: Type.String({ minLength: 44, maxLength: 44 }),
        /** base64 24-byte nonce. */
        nonce: Type.String({ minLength: 32, maxLength: 32 }),
        /** base64 box (ciphertext with its 16-byte tag). */
        box: Type.String({ minLength: 1, maxLength: 65536 }),
      },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false },
);
export type Sealed = Static<typeof SealedSchema>;

/** A string that may be sealed: what config fields that can hold secrets accept. */
export const MaybeSealedString = Type.Union([Type.String(), SealedSchema]);
export type MaybeSealedString = Static<typeof MaybeSealedString>;

export function isSealed(v: unknown): v is Sealed {
  return typeof v === 'object' && v !== null && 'sealed' in v;
}

/**
 * Seals plaintext to a device's box public key. sealingSeed (32 random bytes the sealer keeps)
 * makes the ephemeral key and nonce deterministic per (device, plaintext).
 */
export function sealSecret(plaintext: string, deviceBoxPublicKey: string, sealingSeed: Uint8Array): Sealed {
  const devicePub = fromB64(deviceBoxPublicKey, 32, 'device box key');
  const mac = createHmac('sha512', Buffer.from(sealingSeed)).update(devicePub).update(Buffer.from(plaintext, 'utf8')).digest();
  const eph = nacl.box.keyPair.fromSecretKey(new Uint8Array(mac.subarray(0, 32)));
  const nonce = new Uint8Array(mac.subarray(32, 56));
  const box = nacl.box(Buffer.from(plaintext, 'utf8'), nonce, devicePub, eph.secretKey);
  return { sealed: { alg: SEALED_ALG, epk: b64(eph.publicKey), nonce: b64(nonce), box: b64(box) } };
}

export class SecretError extends Error {
  override name = 'SecretError';
}

/** Opens a sealed secret with the device's box secret key; plain strings pass through. */
export function openSecret(value: MaybeSealedString, deviceBoxSecretKey: string): string {
  if (typeof value === 'string') return value;
  const s = value.sealed;
  let opened: Uint8Array | null = null;
  try {
    opened = nacl.box.open(fromB64(s.box, Buffer.from(s.box, 'base64').length, 'box'), fromB64(s.nonce, 24, 'nonce'),
      fromB64(s.epk, 32, 'epk'), fromB64(deviceBoxSecretKey, 32, 'device box secret key'));
  } catch (err) {
    throw new SecretError(`sealed secret is malformed: ${(err as Error).message}`);
  }
  if (!opened) throw new SecretError('sealed secret does not open with this device\'s key (sealed to another device, or altered)');
  return Buffer.from(opened).toString('utf8');
}

/** What to show instead of a secret: never the value, only that there is one and a short fingerprint of its box. */
export function redacted(value: MaybeSealedString): string {
  if (typeof value === 'string') return '(clear text)';
  return `(sealed ${createHash('sha256').update(value.sealed.box).digest('hex').slice(0, 8)})`;
}

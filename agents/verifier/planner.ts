// The verifier's decisions, pure: what to do for one VerifyImageConfig given
// what is published, what is on disk and the trusted keys. Also the signature
// check, which is pure computation over the digest string.
import nacl from 'tweetnacl';
import type { VerifyImageConfig, VerifyImageStatus } from '../../pubsub/collections/content';

export interface PublisherKey {
  id: string;
  ed25519: string;
}

export interface VerifyFacts {
  status?: VerifyImageStatus;
  /** Size of <verified>/<hex> when it exists. */
  verifiedSize?: number;
  inFlight: boolean;
  keys: readonly PublisherKey[];
  signatureRequired: boolean;
  /** The config (as JSON) whose pending file failed the hash; not retried until the config changes. */
  rejectedConfig?: string;
}

export type VerifyAction =
  | { action: 'none' }
  /** refCount 0: delete the verified file and unpublish. */
  | { action: 'delete' }
  /** Publish an error; the pending file is kept (a corrected key or config can still accept it). */
  | { action: 'reject'; error: string; retryCondition: string }
  /** Already verified on disk: publish VERIFIED. */
  | { action: 'adopt'; signedBy?: string }
  | { action: 'verify'; signedBy?: string }
  /** Only the refCount (or signer) changed. */
  | { action: 'refcount'; signedBy?: string };

export function planVerify(config: VerifyImageConfig, facts: VerifyFacts): VerifyAction {
  if (config.refCount === 0) return { action: 'delete' };
  if (facts.inFlight) return { action: 'none' };
  const sig = checkSignature(config, facts.keys, facts.signatureRequired);
  if (!sig.ok) return { action: 'reject', error: sig.error, retryCondition: 'fix the content tree signature or the publisher keys' };
  const { status } = facts;
  if (facts.verifiedSize !== undefined) {
    if (config.sizeBytes !== undefined && config.sizeBytes !== facts.verifiedSize) {
      return { action: 'reject', error: `size mismatch for ${config.digest}: expected ${config.sizeBytes} bytes, verified file has ${facts.verifiedSize}`, retryCondition: 'fix the size in the config' };
    }
    if (status?.state !== 'VERIFIED' || status.error) return { action: 'adopt', signedBy: sig.signedBy };
    if (status.refCount !== config.refCount || status.signedBy !== sig.signedBy) return { action: 'refcount', signedBy: sig.signedBy };
    return { action: 'none' };
  }
  if (facts.rejectedConfig === JSON.stringify(config)) return { action: 'none' };
  return { action: 'verify', signedBy: sig.signedBy };
}

export type SignatureCheck = { ok: true; signedBy?: string } | { ok: false; error: string };

/** An ed25519 signature over the ASCII digest string by a trusted key, when the config carries one (or policy requires one). */
export function checkSignature(config: VerifyImageConfig, keys: readonly PublisherKey[], required: boolean): SignatureCheck {
  const sig = config.signature;
  if (!sig) return required ? { ok: false, error: `${config.digest} has no signature and content.signature.required is true` } : { ok: true };
  const key = keys.find((k) => k.id === sig.keyId);
  if (!key) return { ok: false, error: `${config.digest} is signed by key "${sig.keyId}", which is not a trusted publisher key` };
  const pub = Buffer.from(key.ed25519, 'base64');
  if (pub.length !== nacl.sign.publicKeyLength) return { ok: false, error: `publisher key "${key.id}" is not a 32-byte ed25519 key (got ${pub.length} bytes)` };
  const signature = Buffer.from(sig.signature, 'base64');
  const good = signature.length === nacl.sign.signatureLength && nacl.sign.detached.verify(Buffer.from(config.digest, 'ascii'), signature, pub);
  if (!good) return { ok: false, error: `signature of ${config.digest} by key "${key.id}" does not verify` };
  return { ok: true, signedBy: key.id };
}

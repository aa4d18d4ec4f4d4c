// The signed envelope every controller API message travels in. The body is JSON
// text, signed as it is (no canonical form to get wrong), with the message kind
// in the signed bytes so a signature made for one kind of message (an info
// record) can never be replayed as another (a config).
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import type { Signer, Verifier } from '../lib/keys';

export const ENVELOPE_VERSION = 1;

export const EnvelopeSchema = Type.Object(
  {
    v: Type.Literal(ENVELOPE_VERSION),
    /** What the body is: 'config', 'info', 'metrics', 'status', 'onboard-request', 'onboard-reply'. */
    kind: Type.String({ minLength: 1, maxLength: 32 }),
    /** The signer's key id (keyId of its public key), to name it in errors and pick keys on rotation. */
    kid: Type.String({ minLength: 1, maxLength: 64 }),
    /** The message itself, JSON text. */
    body: Type.String(),
    /** base64 ed25519 signature over signedBytes(kind, body). */
    sig: Type.String({ minLength: 1, maxLength: 128 }),
  },
  { additionalProperties: false },
);
export type Envelope = Static<typeof EnvelopeSchema>;

export function signedBytes(kind: string, body: string): Buffer {
  return Buffer.from(`zedbox-api-v1\n${kind}\n${body}`, 'utf8');
}

export function seal(kind: string, body: unknown, signer: Signer, kid: string): Buffer {
  const text = JSON.stringify(body);
  const env: Envelope = { v: ENVELOPE_VERSION, kind, kid, body: text, sig: signer.sign(signedBytes(kind, text)) };
  return Buffer.from(JSON.stringify(env));
}

export type Opened =
  | { ok: true; envelope: Envelope; body: unknown }
  | { ok: false; reason: 'malformed' | 'kind' | 'signature' | 'body'; error: string; envelope?: Envelope };

/** Parses a payload as an envelope without trusting it: the caller picks the key by kid, then verifies. */
export function parseEnvelope(payload: Buffer | string): Opened {
  let raw: unknown;
  try {
    raw = JSON.parse(payload.toString());
  } catch (err) {
    return { ok: false, reason: 'malformed', error: `not JSON: ${(err as Error).message}` };
  }
  if (!Value.Check(EnvelopeSchema, raw)) {
    const first = Value.Errors(EnvelopeSchema, raw).First();
    return { ok: false, reason: 'malformed', error: `not a signed envelope: ${first ? `${first.path || '/'} ${first.message}` : 'wrong shape'}` };
  }
  return { ok: true, envelope: raw, body: undefined };
}

/** Checks kind and signature, then parses the body. Nothing in the body is trusted before this returns ok. */
export function openEnvelope(payload: Buffer | string, expectedKind: string, verifier: Verifier): Opened {
  const parsed = parseEnvelope(payload);
  if (!parsed.ok) return parsed;
  const env = parsed.envelope;
  if (env.kind !== expectedKind) {
    return { ok: false, reason: 'kind', error: `expected a ${expectedKind} message, got ${env.kind}`, envelope: env };
  }
  if (!verifier.verify(signedBytes(env.kind, env.body), env.sig)) {
    return { ok: false, reason: 'signature', error: `bad signature on the ${env.kind} message (signed as key ${env.kid})`, envelope: env };
  }
  try {
    return { ok: true, envelope: env, body: JSON.parse(env.body) };
  } catch (err) {
    return { ok: false, reason: 'body', error: `signed body is not JSON: ${(err as Error).message}`, envelope: env };
  }
}

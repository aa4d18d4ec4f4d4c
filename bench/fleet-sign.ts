// ed25519 with tweetnacl against Node's crypto, same key, same ~500 B info body
// as the fleet sends (the bytes signedBytes() makes of it): the figure behind
// api/keys.ts using Node's for every signature and check. Each side must also
// accept the other's signatures, or the two could not be mixed on one link.
import { randomUUID } from 'node:crypto';
import { signedBytes } from '../api/envelope';
import { naclSignerFor, naclVerifierFor, newSignKeyPair, signerFor, verifierFor, type Signer, type Verifier } from '../lib/keys';
import { KINDS } from '../api/messages';
import { appInfoBody } from './fleet-bodies';

/** How long each rate is measured (the slow tweetnacl verify gets ~100 ops in a second here). */
const RUN_MS = Number(process.env.BENCH_FLEET_SIGN_MS ?? 1000);
const WARM_OPS = 20;

const fmt = (x: number, d = 0): string => x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });

/** Operations per second of fn, over RUN_MS after a warm-up. */
function rate(fn: () => unknown): number {
  for (let i = 0; i < WARM_OPS; i++) fn();
  const t0 = performance.now();
  let n = 0;
  let elapsed = 0;
  while (elapsed < RUN_MS) {
    for (let i = 0; i < 10; i++) fn();
    n += 10;
    elapsed = performance.now() - t0;
  }
  return (n * 1000) / elapsed;
}

export function benchSigning(): string[] {
  const kp = newSignKeyPair();
  const body = appInfoBody({ deviceId: randomUUID(), serial: 'fleet-00000', appId: randomUUID(), volumeId: randomUUID() }, 1, 0, new Date());
  const text = JSON.stringify(body);
  const data = signedBytes(KINDS.info, text);
  const impls: Array<{ name: string; signer: Signer; verifier: Verifier }> = [
    { name: 'tweetnacl', signer: naclSignerFor(kp), verifier: naclVerifierFor(kp.publicKey) },
    { name: 'node', signer: signerFor(kp), verifier: verifierFor(kp.publicKey) },
  ];
  const lines: string[] = [`an app info body of ${text.length} B (${data.length} B signed, with the kind); ${RUN_MS} ms per figure`];
  const rates: Record<string, { sign: number; verify: number }> = {};
  for (const { name, signer, verifier } of impls) {
    const sig = signer.sign(data);
    const r = { sign: rate(() => signer.sign(data)), verify: rate(() => verifier.verify(data, sig)) };
    rates[name] = r;
    lines.push(`${name.padEnd(9)}: sign ${fmt(r.sign).padStart(7)}/s  verify ${fmt(r.verify).padStart(7)}/s`);
  }

  // Cross-checks: ed25519 signatures are deterministic, so the two must be byte-identical too.
  const [nacl, node] = impls as [typeof impls[0], typeof impls[0]];
  const naclSig = nacl.signer.sign(data);
  const nodeSig = node.signer.sign(data);
  const tampered = Buffer.from(data);
  tampered[tampered.length - 2] = tampered[tampered.length - 2]! ^ 1;
  const checks: Array<[string, boolean]> = [
    ['node verifies the tweetnacl signature', node.verifier.verify(data, naclSig)],
    ['tweetnacl verifies the node signature', nacl.verifier.verify(data, nodeSig)],
    ['signatures are byte-identical', naclSig === nodeSig],
    ['node rejects a changed body', !node.verifier.verify(tampered, naclSig)],
    ['tweetnacl rejects a changed body', !nacl.verifier.verify(tampered, nodeSig)],
  ];
  const bad = checks.filter(([, ok]) => !ok).map(([what]) => what);
  lines.push(bad.length ? `ERROR: cross-check failed: ${bad.map((b) => `NOT ${b}`).join('; ')}` : `cross-checks: ${checks.map(([w]) => w).join(', ')}: all OK`);

  const n = rates.node!;
  const t = rates.tweetnacl!;
  lines.push(
    `=> ed25519 500 B: node sign ${fmt(n.sign)}/s verify ${fmt(n.verify)}/s | tweetnacl sign ${fmt(t.sign)}/s verify ${fmt(t.verify)}/s` +
      ` | node/tweetnacl sign ${fmt(n.sign / t.sign, 1)}x verify ${fmt(n.verify / t.verify, 1)}x${bad.length ? ' | CROSS-CHECK FAILED' : ''}`,
  );
  return lines;
}

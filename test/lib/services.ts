// The real parts tests run against: a Docker engine, the Distribution registry
// and a busybox test image, started (and installed if missing) by
// scripts/test-services.sh. A test that needs them calls ensureServices() first;
// if they cannot start, the test fails: a missing part is a set-up failure.
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';

export interface Services {
  /** host:port of the plain-HTTP registry on 127.0.0.1. */
  registry: string;
  /** The base image every test app derives from, already in the engine and the registry. */
  baseImage: string;
  dockerSocket: string;
}

let cached: Services | undefined;

export function ensureServices(): Services {
  if (cached) return cached;
  const script = path.join(__dirname, '..', '..', 'scripts', 'test-services.sh');
  const out = execFileSync('bash', [script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 600_000 });
  const registry = out.trim().split('\n').pop() ?? '';
  cached = { registry, baseImage: 'zedbox-test/busybox:1', dockerSocket: '/var/run/docker.sock' };
  return cached;
}

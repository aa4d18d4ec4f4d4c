// A real HTTP CONNECT proxy (Debian's tinyproxy) on the loopback, for the tests of
// paths to the controller through a proxy (nim's probe, zedagent's link).
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { freePort } from './config-builder';

export interface Tinyproxy {
  url: string;
  /** Kills it: connections through it end. */
  stop(): void;
}

export async function startTinyproxy(t: { teardown(fn: () => void): void }): Promise<Tinyproxy> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zb-tinyproxy-'));
  const port = await freePort();
  fs.writeFileSync(path.join(dir, 'tinyproxy.conf'), `Port ${port}\nListen 127.0.0.1\nAllow 127.0.0.1\nTimeout 10\nMaxClients 10\nLogLevel Warning\n`);
  if (!fs.existsSync('/usr/bin/tinyproxy')) throw new Error('/usr/bin/tinyproxy is missing: bash scripts/test-services.sh installs it');
  const child = spawn('/usr/bin/tinyproxy', ['-d', '-c', path.join(dir, 'tinyproxy.conf')], { stdio: 'ignore' });
  const stop = (): void => { child.kill('SIGKILL'); };
  t.teardown(() => {
    stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  for (const deadline = Date.now() + 10_000; ;) {
    const up = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => { s.destroy(); resolve(true); });
      s.once('error', () => resolve(false));
    });
    if (up) return { url: `http://127.0.0.1:${port}`, stop };
    if (Date.now() > deadline) throw new Error('tinyproxy did not start');
    await new Promise((r) => setTimeout(r, 50));
  }
}

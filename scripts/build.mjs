// Bundles zedbox into dist/zedbox (one JavaScript file) with the native addons it
// needs beside it, and links dist/bin/<agent> -> ../zedbox for every agent and tool.
// dist/ then runs on its own, with no node_modules.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = path.join(root, 'dist');
const require = createRequire(import.meta.url);

/** The zeromq addon this machine loads: zeromq's own loader picks it at run time from a
 *  manifest, which a bundle cannot carry, so the build asks that loader here and pins its choice. */
function zeromqAddon() {
  const script = `
    const path = require('path');
    const m = require('module');
    const orig = m.prototype.require;
    let chosen;
    m.prototype.require = function (id) {
      const r = orig.apply(this, arguments);
      if (id.endsWith('.node')) chosen = chosen || require.resolve(id, { paths: [path.dirname(this.filename)] });
      return r;
    };
    require('zeromq');
    process.stdout.write(chosen || '');`;
  const chosen = execFileSync(process.execPath, ['-e', script], { cwd: root, encoding: 'utf8' }).trim();
  if (!chosen || !fs.existsSync(chosen)) throw new Error('could not find which zeromq addon loads on this machine');
  return chosen;
}

const zeromqPlugin = (addon) => ({
  name: 'zeromq-addon',
  setup(build) {
    build.onLoad({ filter: /zeromq[\\/]lib[\\/]load-addon\.js$/ }, () => ({
      contents: `"use strict"; Object.defineProperty(exports, "__esModule", { value: true }); exports.default = require(${JSON.stringify(addon)});`,
      loader: 'js',
      resolveDir: path.dirname(addon),
    }));
  },
});

/** dockerode can reach an engine over SSH and run BuildKit sessions over gRPC; zedbox
 *  uses neither (the engine's unix socket only), so those modules, a megabyte and two
 *  native addons, are left out. Touching one says why instead of failing obscurely. */
const UNUSED = ['ssh2', 'cpu-features', '@grpc/grpc-js', '@grpc/proto-loader', 'protobufjs'];
const unusedPlugin = {
  name: 'unused-modules',
  setup(build) {
    const filter = new RegExp(`^(${UNUSED.map((m) => m.replace(/[/.]/g, '\\$&')).join('|')})$`);
    build.onResolve({ filter }, (args) => ({ path: args.path, namespace: 'unused' }));
    build.onLoad({ filter: /.*/, namespace: 'unused' }, (args) => ({
      // Reading a property (dockerode does at load) is fine; calling anything throws.
      contents: `const why = ${JSON.stringify(`zedbox does not bundle ${args.path}`)};
const stub = (name) => new Proxy(function () {}, {
  get(_, k) { return k === '__esModule' ? false : typeof k === 'symbol' || k === 'then' ? undefined : stub(name + '.' + k); },
  apply() { throw new Error(why + ' (called ' + name + ')'); },
  construct() { throw new Error(why + ' (constructed ' + name + ')'); },
});
module.exports = stub(${JSON.stringify(args.path)});`,
      loader: 'js',
    }));
  },
};

function version() {
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
  let rev = '';
  try {
    rev = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    // not a git checkout: the package version alone
  }
  return rev ? `${pkg.version}+${rev}` : pkg.version;
}

async function main() {
  const started = Date.now();
  fs.rmSync(dist, { recursive: true, force: true });
  fs.mkdirSync(path.join(dist, 'bin'), { recursive: true });
  const addon = zeromqAddon();
  const out = path.join(dist, 'zedbox');
  const result = await esbuild.build({
    entryPoints: [path.join(root, 'zedbox/main.ts')],
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    outfile: out,
    minify: process.env.ZEDBOX_MINIFY === '1',
    sourcemap: false,
    legalComments: 'none',
    loader: { '.node': 'copy' },
    assetNames: '[name]-[hash]',
    define: { __ZEDBOX_VERSION__: JSON.stringify(version()) },
    plugins: [zeromqPlugin(addon), unusedPlugin],
    metafile: true,
    logLevel: 'warning',
  });
  // The entry is both the program and a module; a plain `node dist/zedbox` must run main().
  let code = fs.readFileSync(out, 'utf8');
  if (!code.startsWith('#!')) code = '#!/usr/bin/env node\n' + code;
  fs.writeFileSync(out, code, { mode: 0o755 });

  // The bundle names what it answers to (requiring it does not run it: require.main differs).
  const { LINK_NAMES } = require(out);
  for (const name of LINK_NAMES) fs.symlinkSync('../zedbox', path.join(dist, 'bin', name));
  fs.symlinkSync('../zedbox', path.join(dist, 'bin', 'zedbox'));

  const files = fs.readdirSync(dist).filter((f) => f !== 'bin');
  const sizes = files.map((f) => `${f} ${(fs.statSync(path.join(dist, f)).size / 1e6).toFixed(2)} MB`).join(', ');
  console.log(`built dist/ in ${Date.now() - started} ms: ${sizes}; links: ${LINK_NAMES.join(' ')}`);
  if (result.warnings.length) process.exitCode = 1;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

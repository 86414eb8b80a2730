// The package as npm would publish it: packed, installed into an empty project, and the library
// example of docs/library.md run there with `require('avap')`.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const root = path.resolve(__dirname, '..', '..');
// onnxruntime-node's install script would download CUDA files; its CPU binary ships in the package.
const npm = (args: string[], cwd: string) => execFileSync('npm', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip' } });

/** The ```js block of docs/library.md that starts with the library example's first line. */
function libraryExample(): string {
  const doc = fs.readFileSync(path.join(root, 'docs', 'library.md'), 'utf8');
  const block = [...doc.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]).find((b) => b.startsWith('// From code'));
  assert.ok(block, "docs/library.md has a ```js block starting with '// From code'");
  return block;
}

test('npm pack ships the build and the addon; installed elsewhere, the documented library example runs', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'avap-package-'));
  // The build is current (npm test runs scripts/setup.sh first); prepack would run setup again.
  const packed = JSON.parse(npm(['pack', '--ignore-scripts', '--json', '--pack-destination', tmp], root))[0];
  const files = new Set<string>(packed.files.map((f: { path: string }) => f.path));
  for (const f of ['dist/src/index.js', 'dist/src/index.d.ts', 'dist/src/cli/main.js', 'dist/src/data/loader-worker.js', 'native/build/Release/avap_torch.node', 'native/binding.gyp', 'native/libtorch.js', 'native/src/addon.cc', 'scripts/install.js']) {
    assert.ok(files.has(f), `the package holds ${f}`);
  }
  assert.ok(![...files].some((f) => f.startsWith('dist/test/') || f.startsWith('src/') || f.endsWith('.map')), 'no tests, TypeScript sources or source maps');

  const app = path.join(tmp, 'app');
  fs.mkdirSync(app);
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', private: true }));
  npm(['install', path.join(tmp, packed.filename), '--no-audit', '--no-fund', '--prefer-offline', '--no-package-lock'], app);
  assert.equal(execFileSync(process.execPath, ['-p', "require.resolve('avap')"], { cwd: app, encoding: 'utf8' }).trim(), path.join(app, 'node_modules', 'avap', 'dist', 'src', 'index.js'));

  fs.writeFileSync(path.join(app, 'example.js'), libraryExample());
  const out = execFileSync(process.execPath, ['example.js'], { cwd: app, encoding: 'utf8', env: { ...process.env, AVAP_NUM_THREADS: '1' } });
  assert.match(out, /^train step 1\/1: loss [\d.]+, lr [\d.e-]+, [\d.]+ s$/m);
  const score = String.raw`(0|1|0\.\d+|\d(\.\d+)?e-\d+)`; // a fraction, as JavaScript prints it (tiny ones in exponent form)
  assert.match(out, new RegExp(String.raw`^mean voting \{ disc: ${score}, cup: ${score} \} selected step 1$`, 'm'));
  assert.match(out, /^methods single mh-unet mv-unet ls-unet cm-net mr-net padl avap$/m);
  assert.match(out, /^encoders resnet18 resnet34 resnet50$/m);
  assert.match(out, /^relu \[ 0, 2 \]$/m);
  assert.ok(fs.existsSync(path.join(app, 'evaluation', 'summary.json')));
  const help = execFileSync(path.join(app, 'node_modules', '.bin', 'avap'), ['--help'], { cwd: app, encoding: 'utf8' });
  assert.match(help, /Usage: avap/);
});

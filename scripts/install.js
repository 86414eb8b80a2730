#!/usr/bin/env node
// npm's install step of the packed package: keep the prebuilt libtorch addon when it loads on this
// machine, otherwise build it from native/ (needs Debian's libtorch-dev and a C++ compiler).
// In a checkout of the repository scripts/setup.sh builds the addon, so this does nothing there.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const root = path.resolve(__dirname, '..');
if (fs.existsSync(path.join(root, 'src', 'index.ts'))) process.exit(0);

process.env.OPENBLAS_NUM_THREADS = process.env.OPENBLAS_NUM_THREADS || '1';
const addon = path.join(root, 'native', 'build', 'Release', 'avap_torch.node');
try {
  require(addon);
  process.exit(0);
} catch (err) {
  process.stderr.write(`avap: the prebuilt libtorch addon does not load here (${String(err.message).split('\n')[0]}); building it from native/\n`);
}
const gyp = process.env.npm_config_node_gyp ? [process.execPath, process.env.npm_config_node_gyp] : ['node-gyp'];
const r = spawnSync(gyp[0], [...gyp.slice(1), 'rebuild', '--directory', 'native'], { cwd: root, stdio: 'inherit' });
process.exit(r.status === null ? 1 : r.status);

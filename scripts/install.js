#!/usr/bin/env node
'use strict';
// npm "install" step: use a binary that already loads (a local build, or the prebuild for this platform);
// otherwise compile from source with cmake-js (CUDA kernels when nvcc is found, WSF_CUDA=OFF to skip them).
// Downloads nothing: cmake-js uses the Node-API headers bundled with node-api-headers (package.json "binary").
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const candidates = [
  path.join(root, 'build', 'Release', 'wsflow.node'),
  path.join(root, 'prebuilds', `${process.platform}-${process.arch}`, 'wsflow.node'),
];

function loads(p) {
  if (!fs.existsSync(p)) return false;
  const r = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(p)}).buildInfo()`], { stdio: 'ignore' });
  return r.status === 0;
}

if (process.env.WSF_FORCE_BUILD !== '1') {
  for (const p of candidates) {
    if (loads(p)) {
      console.log(`wsflow: using ${path.relative(root, p)}`);
      process.exit(0);
    }
  }
}

let cmakeJs;
try {
  cmakeJs = require.resolve('cmake-js/bin/cmake-js');
} catch {
  console.error('wsflow: no prebuilt binary loads here and cmake-js is not installed; run `npm install` in the package folder.');
  process.exit(1);
}
console.log('wsflow: compiling the native addon (cmake-js; set WSF_CUDA=OFF to skip the CUDA kernels)');
const r = spawnSync(process.execPath, [cmakeJs, 'compile'], { cwd: root, stdio: 'inherit' });
if (r.status !== 0) {
  // cmake-js's own lines above say what failed; this one says what the build needs and how to retry.
  console.error(
    'wsflow: the native addon did not compile (see above). It needs cmake >= 3.18 and a C++17 compiler (g++ or clang++); ' +
      'nvcc is optional (WSF_CUDA=OFF skips the CUDA kernels). Once they are installed: `npm rebuild wsflow` ' +
      '(in a checkout: `npm run build:native`).',
  );
}
process.exit(r.status === null ? 1 : r.status);

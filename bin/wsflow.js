#!/usr/bin/env node
'use strict';
// The `wsflow` command: a thin launcher for the compiled CLI in dist/.
const path = require('node:path');
const fs = require('node:fs');
const main = path.join(__dirname, '..', 'dist', 'cli', 'main.js');
if (!fs.existsSync(main)) {
  process.stderr.write('wsflow: the TypeScript build is missing (dist/). Run `npm install` or `npm run build` in the package folder.\n');
  process.exit(1);
}
require(main).main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err) => {
    process.stderr.write(`wsflow: ${err && err.message ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);

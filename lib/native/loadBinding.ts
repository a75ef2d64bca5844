/**
 * Finds and loads the native addon. Resolution order:
 *  1. an explicit path: the `path` argument or the `WSF_BINDING` environment variable;
 *  2. the local build: `build/Release/wsflow.node` (what `npm install` / `cmake-js` produce in a checkout);
 *  3. the prebuild for this platform: `prebuilds/<platform>-<arch>/wsflow.node`.
 * A failure throws {@link NoBinaryFoundError} listing every candidate, why it failed, and the command that fixes it.
 */
import { createRequire } from 'node:module';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { NoBinaryFoundError } from '../errors.js';
import type { NativeBinding } from './types.js';

const requireNative = createRequire(__filename);

/** The package root (lib/native/ under vitest, dist/native/ when compiled: both two levels down). */
export const packageRoot: string = path.resolve(__dirname, '..', '..');

/** The override in force, if any: a path given, else a non-empty WSF_BINDING; with the label errors name it by. */
function override(explicit?: string): { label: 'The path given' | 'WSF_BINDING'; path: string } | undefined {
  if (explicit !== undefined && explicit !== '') return { label: 'The path given', path: path.resolve(explicit) };
  const env = process.env.WSF_BINDING;
  return env !== undefined && env !== '' ? { label: 'WSF_BINDING', path: path.resolve(env) } : undefined;
}

/** Candidate binary paths in resolution order. */
export function bindingCandidates(explicit?: string): string[] {
  const first = override(explicit);
  return [
    ...(first !== undefined ? [first.path] : []),
    path.join(packageRoot, 'build', 'Release', 'wsflow.node'),
    path.join(packageRoot, 'prebuilds', `${process.platform}-${process.arch}`, 'wsflow.node'),
  ];
}

/** Loads the first candidate that exists and loads. */
export function loadBinding(explicit?: string): NativeBinding {
  const tried: string[] = [];
  const candidates = bindingCandidates(explicit);
  const over = override(explicit)?.label;
  for (const [i, p] of candidates.entries()) {
    const isExplicit = i === 0 && over !== undefined;
    if (!fs.existsSync(p)) {
      tried.push(`${p}: not found`);
      if (isExplicit) break; // an explicit override that does not exist is an error, not a fall-through
      continue;
    }
    try {
      const mod = requireNative(p) as NativeBinding;
      Object.defineProperty(mod, '__path', { value: p, enumerable: false });
      return mod;
    } catch (e) {
      tried.push(`${p}: ${(e as Error).message.split('\n')[0] ?? String(e)}`);
      if (isExplicit) break;
    }
  }
  const fix =
    over !== undefined
      ? `${over} names no addon that loads; point it at a built wsflow.node${over === 'WSF_BINDING' ? ", or unset it to use the package's own build" : ''}.`
      : bindingFix(packageRoot);
  throw new NoBinaryFoundError(`wsflow: could not load the native addon. Tried:\n  ${tried.join('\n  ')}\n${fix}`, tried, fix);
}

/**
 * What builds the addon for a package at `root`: inside a node_modules folder wsflow is a dependency whose install
 * step did not run or failed (`--ignore-scripts`, npm's allowScripts approvals, pnpm's build approvals), which
 * `npm rebuild wsflow` in the user's project repeats; in a checkout, the package's own build script.
 */
export function bindingFix(root: string): string {
  const tail = 'Set WSF_BINDING=/path/to/wsflow.node to use a specific binary.';
  if (root.split(path.sep).includes('node_modules')) {
    return (
      'wsflow compiles it when it is installed (cmake, a C++17 compiler; nvcc optional); that step did not run or failed. ' +
      'Run `npm rebuild wsflow` in your project (where npm asks to approve install scripts first: ' +
      '`npm install-scripts approve wsflow`; pnpm: `pnpm approve-builds`). ' + tail
    );
  }
  return 'Build it with `npm run build:native` (needs cmake, a C++17 compiler; nvcc optional), or `npm install`. ' + tail;
}

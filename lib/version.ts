/** Package version, read from package.json at load time. */
import * as fs from 'node:fs';
import * as path from 'node:path';

function read(): string {
  try {
    const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8')) as { version?: string };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

/** The wsflow version. */
export const version: string = read();

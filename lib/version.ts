// The plugin's version: injected at bundle time, read from package.json when run from source.
import { readFileSync } from 'node:fs';

declare const __VERSION__: string | undefined;

function fromPackageJson(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? '0.0.0-dev';
  } catch {
    return '0.0.0-dev';
  }
}

/** The version of this build of kubectl-cilium_migrate and its agent. */
export const version: string = typeof __VERSION__ === 'string' ? __VERSION__ : fromPackageJson();

// Bundles the plugin and the agent into single files with esbuild (`make build`).
import { build } from 'esbuild';
import { chmod, readFile } from 'node:fs/promises';

const pkg = JSON.parse(await readFile(new URL('./package.json', import.meta.url), 'utf8'));

// Bundled ESM still meets CommonJS dependencies that call require(); give them one.
const banner = [
  '#!/usr/bin/env node',
  "import { createRequire as __createRequire } from 'node:module';",
  'const require = __createRequire(import.meta.url);',
].join('\n');

const common = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  banner: { js: banner },
  define: { __VERSION__: JSON.stringify(pkg.version) },
  legalComments: 'none',
  logLevel: 'warning',
  // Less than half the size and over 20 MiB less memory at start (BENCHMARKS.md, "Plugin start-up
  // and bundle size"); nearly all of the bundle is @kubernetes/client-node's generated models.
  // Identifiers are not renamed, so class names, error names and stacks (-v) read as in the source.
  minifyWhitespace: true,
  minifySyntax: true,
};

await build({ ...common, entryPoints: ['cmd/main.ts'], outfile: 'dist/kubectl-cilium_migrate' });
await build({ ...common, entryPoints: ['agent/main.ts'], outfile: 'dist/agent.js' });
await chmod('dist/kubectl-cilium_migrate', 0o755);
// The lab's programs: run inside lab network namespaces, where tsx and the repository may not be:
// the API server's egress gateway, the registry mirror, `docker` for the nodes; the tests' and
// benchmarks' TCP-to-socket forwarder and the end-to-end test's traffic checker.
await build({ ...common, entryPoints: ['lab/egress-proxy.ts'], outfile: 'dist/lab/egress-proxy.js' });
await build({ ...common, entryPoints: ['lab/registry.ts'], outfile: 'dist/lab/registry.js' });
await build({ ...common, entryPoints: ['lab/docker-shim.ts'], outfile: 'dist/lab/docker.js' });
for (const program of ['tcp-forward', 'traffic-checker']) {
  await build({ ...common, entryPoints: [`lab/programs/${program}.ts`], outfile: `dist/lab/${program}.js` });
}
// The lab's command line: `node dist/lab.js up|down|status|restart-node|demo`.
await build({ ...common, entryPoints: ['lab/cli.ts'], outfile: 'dist/lab.js' });
await chmod('dist/lab.js', 0o755);

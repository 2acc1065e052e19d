// The project's image: the Dockerfile copies only what the build makes (dist/agent.js and the
// plugin, which the in-cluster run's Job runs), on a Debian Node 20 base with iputils-ping; `make
// image` tags it as the kustomization names it, and says clearly when there is no container engine
// to build with. The lab's catalog builds the same image with the same two files.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { labImages } from '../../lab/images/catalog.js';
import { inClusterRun } from '../../lib/defaults.js';
import { repoRoot } from '../harness/plugin.js';

const run = promisify(execFile);
const read = (file: string) => readFileSync(join(repoRoot, file), 'utf8');

describe('the agent image', () => {
  const lines = read('Dockerfile').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));

  it('is Debian with Node.js 20 and iputils-ping, and copies only the bundled agent and plugin that build.mjs writes', () => {
    const from = lines.filter((l) => /^FROM\s/i.test(l));
    assert.deepEqual(from.length, 1);
    assert.match(from[0]!, /^FROM docker\.io\/library\/node:20[.\d]*-bookworm(-slim)?$/);
    assert.ok(lines.some((l) => /apt-get install .*iputils-ping/.test(l)));
    const copies = lines.filter((l) => /^(COPY|ADD)\s/i.test(l)).map((l) => l.split(/\s+/).slice(1, -1)).flat();
    assert.deepEqual(copies, ['dist/agent.js', 'dist/kubectl-cilium_migrate']);
    assert.match(read('build.mjs'), /outfile: 'dist\/agent\.js'/, 'build.mjs writes what the Dockerfile copies');
    assert.match(read('build.mjs'), /outfile: 'dist\/kubectl-cilium_migrate'/, 'build.mjs writes what the Dockerfile copies');
    // The plugin goes where the in-cluster run's Job runs it from.
    assert.ok(lines.includes(`COPY dist/kubectl-cilium_migrate ${inClusterRun.pluginPath}`), lines.join('\n'));
    // The build context holds those files and nothing else.
    const ignore = read('.dockerignore').split('\n').filter((l) => l && !l.startsWith('#'));
    assert.deepEqual(ignore, ['*', '!dist/agent.js', '!dist/kubectl-cilium_migrate']);
    assert.match(lines.find((l) => l.startsWith('USER'))!, /^USER 1000(:1000)?$/, 'not root');
  });

  it('make image-ref prints the reference the kustomization gives the DaemonSet', async () => {
    const k = parse(read('manifests/agent/kustomization.yaml')) as { images: { name: string; newName: string; newTag: string }[] };
    assert.equal(k.images.length, 1);
    const { stdout } = await run('make', ['-s', '--no-print-directory', 'image-ref'], { cwd: repoRoot });
    assert.equal(stdout.trim(), `${k.images[0]!.newName}:${k.images[0]!.newTag}`);
    assert.match(read('manifests/agent/daemonset.yaml'), new RegExp(`image: ${k.images[0]!.name}\\n`), 'the DaemonSet names the image kustomize replaces');
    assert.equal(inClusterRun.image, `${k.images[0]!.newName}:${k.images[0]!.newTag}`, 'run --in-cluster runs the image make image builds');
  });

  it('is built in the lab with the plugin where the in-cluster run\'s Job runs it', () => {
    const spec = labImages(repoRoot).find((i) => i.names.some((n) => n.includes('cilium-migrate-agent')))!;
    const plugin = spec.files.find((f) => f.path === inClusterRun.pluginPath);
    assert.deepEqual(plugin?.from, { dist: 'kubectl-cilium_migrate' });
    assert.ok(spec.files.some((f) => f.path === '/opt/cilium-migrate/agent.js'));
  });

  it('make image stops with a clear message and exit code 2 when the container engine is missing', async () => {
    const err = await run('make', ['-s', '--no-print-directory', 'image', 'CONTAINER_ENGINE=no-such-engine'], { cwd: repoRoot }).then(
      () => assert.fail('make image succeeded without an engine'),
      (e: { code: number; stderr: string }) => e,
    );
    assert.equal(err.code, 2);
    assert.match(err.stderr, /make image: container engine "no-such-engine" not found: install docker or podman/);
  });
});

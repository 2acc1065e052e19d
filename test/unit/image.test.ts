// The agent image: the Dockerfile copies only what the build makes (dist/agent.js), on a Debian
// Node 20 base with iputils-ping; `make image` tags it as the kustomization names it, and says
// clearly when there is no container engine to build with.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { repoRoot } from '../harness/plugin.js';

const run = promisify(execFile);
const read = (file: string) => readFileSync(join(repoRoot, file), 'utf8');

describe('the agent image', () => {
  const lines = read('Dockerfile').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));

  it('is Debian with Node.js 20 and iputils-ping, and copies only the bundled agent that build.mjs writes', () => {
    const from = lines.filter((l) => /^FROM\s/i.test(l));
    assert.deepEqual(from.length, 1);
    assert.match(from[0]!, /^FROM docker\.io\/library\/node:20[.\d]*-bookworm(-slim)?$/);
    assert.ok(lines.some((l) => /apt-get install .*iputils-ping/.test(l)));
    const copies = lines.filter((l) => /^(COPY|ADD)\s/i.test(l)).map((l) => l.split(/\s+/).slice(1, -1)).flat();
    assert.deepEqual(copies, ['dist/agent.js']);
    assert.match(read('build.mjs'), /outfile: 'dist\/agent\.js'/, 'build.mjs writes what the Dockerfile copies');
    // The build context holds that file and nothing else.
    const ignore = read('.dockerignore').split('\n').filter((l) => l && !l.startsWith('#'));
    assert.deepEqual(ignore, ['*', '!dist/agent.js']);
    assert.match(lines.find((l) => l.startsWith('USER'))!, /^USER 1000(:1000)?$/, 'not root');
  });

  it('make image-ref prints the reference the kustomization gives the DaemonSet', async () => {
    const k = parse(read('manifests/agent/kustomization.yaml')) as { images: { name: string; newName: string; newTag: string }[] };
    assert.equal(k.images.length, 1);
    const { stdout } = await run('make', ['-s', '--no-print-directory', 'image-ref'], { cwd: repoRoot });
    assert.equal(stdout.trim(), `${k.images[0]!.newName}:${k.images[0]!.newTag}`);
    assert.match(read('manifests/agent/daemonset.yaml'), new RegExp(`image: ${k.images[0]!.name}\\n`), 'the DaemonSet names the image kustomize replaces');
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

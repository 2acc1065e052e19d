// The krew manifest passes the rules krew's index validation applies (apiVersion, kind, name from
// the file name, one-line short description, semver version, per platform: uri, a sha256 of the
// right form, bin, files and an os/arch selector), and follows this repository's version and binary.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { repoRoot } from '../harness/plugin.js';

interface Platform {
  selector?: { matchLabels?: Record<string, string>; matchExpressions?: { key: string; operator: string; values: string[] }[] };
  uri?: string;
  sha256?: string;
  bin?: string;
  files?: { from?: string; to?: string }[];
}
interface KrewPlugin {
  apiVersion: string;
  kind: string;
  metadata: { name: string };
  spec: { version: string; shortDescription: string; description?: string; platforms: Platform[] };
}

const file = join(repoRoot, 'plugins', 'cilium-migrate.yaml');

describe('the krew plugin manifest', () => {
  const plugin = parse(readFileSync(file, 'utf8')) as KrewPlugin;

  it('is valid by krew\'s index rules', () => {
    assert.equal(plugin.apiVersion, 'krew.googlecontainertools.github.com/v1alpha2');
    assert.equal(plugin.kind, 'Plugin');
    assert.equal(plugin.metadata.name, basename(file, '.yaml'));
    assert.match(plugin.metadata.name, /^[\w-]+$/);
    assert.ok(plugin.spec.shortDescription && !/[\r\n]/.test(plugin.spec.shortDescription));
    assert.match(plugin.spec.version, /^v\d+\.\d+\.\d+(-[\w.]+)?$/);
    assert.ok(plugin.spec.platforms.length > 0);
    for (const p of plugin.spec.platforms) {
      assert.ok(p.uri, 'uri');
      assert.match(p.sha256 ?? '', /^[a-f0-9]{64}$/);
      assert.ok(p.bin, 'bin');
      assert.ok(p.files === undefined || (p.files.length > 0 && p.files.every((f) => f.from && f.to)));
      const keys = [...Object.keys(p.selector?.matchLabels ?? {}), ...(p.selector?.matchExpressions ?? []).map((e) => e.key)];
      assert.ok(keys.length > 0, 'a selector');
      assert.ok(keys.every((k) => k === 'os' || k === 'arch'), `selector keys ${keys.join(', ')}`);
    }
  });

  it('installs this version\'s kubectl-cilium_migrate from the archive make krew-archive builds', () => {
    const version = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;
    assert.equal(plugin.spec.version, `v${version}`);
    for (const p of plugin.spec.platforms) {
      assert.equal(p.bin, 'kubectl-cilium_migrate', 'kubectl runs kubectl-cilium_migrate for `kubectl cilium-migrate`');
      assert.ok(p.uri?.endsWith(`/kubectl-cilium_migrate-v${version}.tar.gz`), p.uri);
      assert.deepEqual(p.files, [{ from: 'kubectl-cilium_migrate', to: '.' }]);
    }
  });
});

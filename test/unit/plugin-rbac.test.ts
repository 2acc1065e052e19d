// The plugin's ClusterRole (manifests/rbac/plugin-clusterrole.yaml) grants exactly the permissions
// preflight checks (requiredPermissions): whoever adds one must add it to both.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { requiredPermissions } from '../../cmd/migration/preflight.js';
import { repoRoot } from '../harness/plugin.js';

interface PolicyRule {
  apiGroups?: string[];
  resources?: string[];
  verbs?: string[];
  resourceNames?: string[];
  nonResourceURLs?: string[];
}

/** Every "verb group resource[/subresource]" a ClusterRole's rules grant. */
function grants(rules: PolicyRule[]): string[] {
  const out = new Set<string>();
  for (const r of rules) {
    assert.ok(!r.resourceNames && !r.nonResourceURLs, 'rules name resources by kind only');
    for (const g of r.apiGroups ?? []) for (const res of r.resources ?? []) for (const v of r.verbs ?? []) out.add(`${v} ${g} ${res}`);
  }
  return [...out].sort();
}

describe('the plugin ClusterRole', () => {
  const role = parse(readFileSync(join(repoRoot, 'manifests', 'rbac', 'plugin-clusterrole.yaml'), 'utf8')) as { kind: string; metadata: { name: string }; rules: PolicyRule[] };

  it('grants exactly requiredPermissions (cmd/migration/preflight.ts), no wildcard', () => {
    assert.equal(role.kind, 'ClusterRole');
    const granted = grants(role.rules);
    const required = [...new Set(requiredPermissions.map((p) => `${p.verb} ${p.group} ${p.resource}${p.subresource ? `/${p.subresource}` : ''}`))].sort();
    assert.ok(!granted.some((g) => g.includes('*')), 'no wildcard');
    const missing = required.filter((p) => !granted.includes(p));
    const extra = granted.filter((p) => !required.includes(p));
    assert.deepEqual({ missing, extra }, { missing: [], extra: [] }, 'add a permission to both manifests/rbac/plugin-clusterrole.yaml and requiredPermissions');
  });

  it('does not read secrets', () => {
    assert.ok(!grants(role.rules).some((g) => g.endsWith(' secrets')));
  });
});

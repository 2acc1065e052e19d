// The plugin's RBAC (manifests/rbac) grants exactly the permissions preflight checks
// (requiredPermissions, for the default namespaces and every legacy CNI the plugin knows), each in
// the namespace and on the object it concerns: whoever adds one must add it to both.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { knownLegacyCnis, requiredPermissions, type Permission } from '../../cmd/migration/preflight.js';
import { agentNamespace, ciliumNamespace } from '../../lib/defaults.js';
import { repoRoot } from '../harness/plugin.js';

interface PolicyRule {
  apiGroups?: string[];
  resources?: string[];
  verbs?: string[];
  resourceNames?: string[];
  nonResourceURLs?: string[];
}
interface RbacDoc {
  kind: string;
  metadata: { name: string; namespace?: string };
  rules?: PolicyRule[];
  roleRef?: { kind: string; name: string };
  subjects?: { kind: string; name: string }[];
}

const load = (file: string) => parseAllDocuments(readFileSync(join(repoRoot, 'manifests', 'rbac', file), 'utf8')).map((d) => d.toJSON() as RbacDoc).filter(Boolean);
const legacyFiles = readdirSync(join(repoRoot, 'manifests', 'rbac', 'legacy')).filter((f) => f.endsWith('.yaml')).sort();
const key = (p: Permission) => `${p.verb} ${p.group}/${p.resource}${p.subresource ? `/${p.subresource}` : ''} ns=${p.namespace ?? '*'} name=${p.name ?? '*'}`;

/** Every permission the roles grant, one per verb, resource, namespace and name. */
function grants(docs: RbacDoc[]): string[] {
  const out = new Set<string>();
  for (const d of docs.filter((x) => x.kind === 'ClusterRole' || x.kind === 'Role')) {
    for (const r of d.rules ?? []) {
      assert.ok(!r.nonResourceURLs, 'no non-resource URLs');
      for (const g of r.apiGroups ?? []) {
        for (const res of r.resources ?? []) {
          const [resource, subresource] = res.split('/') as [string, string | undefined];
          for (const verb of r.verbs ?? []) {
            for (const name of r.resourceNames ?? [undefined]) out.add(key({ verb, group: g, resource, subresource, namespace: d.kind === 'Role' ? d.metadata.namespace : undefined, name }));
          }
        }
      }
    }
  }
  return [...out].sort();
}

describe('the plugin RBAC (manifests/rbac)', () => {
  const plugin = load('plugin.yaml');
  const legacy = Object.fromEntries(legacyFiles.map((f) => [f.replace(/\.yaml$/, ''), load(join('legacy', f))]));
  const all = [...plugin, ...Object.values(legacy).flat()];
  const scope = { ciliumNamespace, verifyNamespace: 'default', agentNamespace };

  it('has a file for each legacy CNI the plugin knows, granting exactly what that CNI needs beyond plugin.yaml', () => {
    assert.deepEqual(Object.keys(legacy).sort(), Object.keys(knownLegacyCnis).sort());
    const base = new Set(grants(plugin));
    for (const [name, docs] of Object.entries(legacy)) {
      const needed = requiredPermissions({ ...scope, legacy: knownLegacyCnis[name] }).map(key).filter((p) => !base.has(p)).sort();
      assert.deepEqual(grants(docs), [...new Set(needed)].sort(), `manifests/rbac/legacy/${name}.yaml`);
    }
  });

  it('grants exactly requiredPermissions for the default namespaces and the known legacy CNIs, no wildcard', () => {
    const required = new Set([...requiredPermissions(scope), ...Object.values(knownLegacyCnis).flatMap((l) => requiredPermissions({ ...scope, legacy: l }))].map(key));
    const granted = grants(all);
    const rules = all.flatMap((d) => d.rules ?? []);
    assert.ok(rules.every((r) => ![...(r.verbs ?? []), ...(r.resources ?? []), ...(r.apiGroups ?? [])].includes('*')), 'no wildcard verbs, resources or groups');
    const missing = [...required].filter((p) => !granted.includes(p)).sort();
    const extra = granted.filter((p) => !required.has(p));
    assert.deepEqual({ missing, extra }, { missing: [], extra: [] }, 'add a permission to both manifests/rbac and requiredPermissions');
  });

  it('binds every role it defines to the group cilium-migrate, and nothing else', () => {
    const roles = all.filter((d) => d.kind === 'ClusterRole' || d.kind === 'Role').map((d) => `${d.kind}/${d.metadata.namespace ?? ''}/${d.metadata.name}`).sort();
    const bound = all.filter((d) => d.kind.endsWith('Binding')).map((d) => {
      assert.deepEqual(d.subjects?.map((s) => `${s.kind}/${s.name}`), ['Group/cilium-migrate']);
      return `${d.roleRef!.kind}/${d.kind === 'RoleBinding' ? d.metadata.namespace : ''}/${d.roleRef!.name}`;
    }).sort();
    assert.deepEqual(bound, roles);
  });

  it('is least privilege: no secrets, configmaps and pod writes only where named, pods/proxy only for the agents', () => {
    const g = grants(all);
    assert.ok(!g.some((x) => x.includes('/secrets')), 'no secrets');
    // ConfigMaps only by name (cilium-config, finalize's record, the legacy CNI's own), except a
    // list where a legacy CNI's objects live (finalize checks which exist), never in plugin.yaml.
    assert.deepEqual(g.filter((x) => x.includes('/configmaps') && x.endsWith('name=*')), ['list /configmaps ns=kube-flannel name=*', 'list /configmaps ns=kube-system name=*']);
    assert.deepEqual(grants(plugin).filter((x) => x.includes('/configmaps') && x.endsWith('name=*')), []);
    assert.ok(!grants([...plugin, ...legacy['aws-cni']!]).some((x) => x.includes('/configmaps') && !x.includes('name=cilium-')), 'on EKS no ConfigMap but Cilium\'s (aws-auth stays out of reach)');
    // Every delete names its object.
    assert.deepEqual(g.filter((x) => x.startsWith('delete ') && x.endsWith('name=*') && !/^delete \/pods ns=(default|kube-system) /.test(x)), []);
    // Pods are created and deleted only in the Cilium and verify namespaces.
    assert.deepEqual(g.filter((x) => /^(create|delete) \/pods ns=/.test(x)).map((x) => x.replace(/ name=.*/, '')).sort(), ['create /pods ns=default', 'create /pods ns=kube-system', 'delete /pods ns=default', 'delete /pods ns=kube-system']);
    assert.deepEqual(g.filter((x) => x.includes('/pods/proxy')), [`get /pods/proxy ns=${agentNamespace} name=*`]);
    // Leases, DaemonSet writes and CiliumNodeConfig writes only in their namespace, named where a name can be.
    assert.deepEqual(g.filter((x) => /^(get|update|delete) coordination/.test(x)).map((x) => x.replace(/^\S+ /, '')), Array(3).fill(`coordination.k8s.io/leases ns=${ciliumNamespace} name=cilium-migrate`));
    assert.ok(g.filter((x) => /^(patch|delete) apps\/daemonsets/.test(x)).every((x) => !x.endsWith('name=*')));
    assert.ok(g.filter((x) => /^(get|create|patch|delete) cilium.io\/ciliumnodeconfigs/.test(x)).every((x) => x.endsWith('name=cilium-default')));
  });

  it('keeps --disable-eviction\'s delete-anywhere apart, unbound', () => {
    const docs = load('disable-eviction.yaml');
    assert.deepEqual(docs.map((d) => d.kind), ['ClusterRole']);
    assert.deepEqual(grants(docs), ['delete /pods ns=* name=*']);
  });
});

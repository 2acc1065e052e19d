// preflight on a cluster shaped like the seed's (Flannel on 10.244.0.0/16 VXLAN 8472, Cilium in
// migration mode on 10.245.0.0/16 VXLAN 8473, probe agents on every node), then with each
// problem injected: the failing check, its message, and a non-zero exit.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Check } from '../../cmd/migration/preflight.js';
import { ExitCode } from '../../lib/errors.js';
import { ciliumCrdsFile, waitEstablished } from '../../lab/cluster-objects.js';
import type { ControlPlane } from '../../lab/control-plane.js';
import { createAgentPods, legacyAndCiliumConfig, startMigrationCluster } from '../harness/migration-cluster.js';
import { runPlugin } from '../harness/plugin.js';
import { progress } from '../harness/shared-cluster.js';
import { eventually } from '../harness/wait.js';

describe('preflight', () => {
  let cp: ControlPlane;
  const preflight = (kubeconfig = cp.kubeconfig) => runPlugin(['preflight', '--kubeconfig', kubeconfig, '-o', 'json'], { env: { PATH: process.env.PATH ?? '', HOME: cp.rootDir } });
  const checks = (stdout: string) => new Map((JSON.parse(stdout) as Check[]).map((c) => [c.name, c]));
  const patchCiliumConfig = (data: Record<string, string>) => cp.kubectl(['-n', 'kube-system', 'patch', 'configmap', 'cilium-config', '--type=merge', '-p', JSON.stringify({ data })]);

  before(async () => {
    cp = await startMigrationCluster(progress, 2);
    await cp.kubectl(['apply', '-f', '-'], { input: legacyAndCiliumConfig });
    await createAgentPods(cp, ['kind-control-plane', 'kind-worker', 'kind-worker2']);
  });
  after(() => cp?.stop());

  it('passes on the seed-shaped cluster, naming what it found', async () => {
    const r = await preflight();
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const c = checks(r.stdout);
    assert.ok([...c.values()].every((x) => x.result === 'pass'), r.stdout);
    assert.match(c.get('legacy CNI')!.detail, /flannel \(DaemonSet kube-flannel\/kube-flannel-ds\), pod CIDR 10\.244\.0\.0\/16 \(net-conf\.json in kube-flannel\/kube-flannel-cfg\), VXLAN on UDP 8472/);
    assert.match(c.get('CiliumNodeConfig API')!.detail, /cilium\.io\/v2.*uses v2/);
    const table = await runPlugin(['preflight', '--kubeconfig', cp.kubeconfig], { env: { PATH: process.env.PATH ?? '', HOME: cp.rootDir } });
    assert.match(table.stdout, /^RESULT\s+CHECK\s+DETAIL$/m);
  });

  const problems: { name: string; inject: () => Promise<unknown>; undo: () => Promise<unknown>; check: string; message: RegExp }[] = [
    {
      name: 'a Cilium CIDR overlapping the legacy one',
      inject: () => patchCiliumConfig({ 'cluster-pool-ipv4-cidr': '10.244.128.0/17' }),
      undo: () => patchCiliumConfig({ 'cluster-pool-ipv4-cidr': '10.245.0.0/16' }),
      check: 'Cilium CIDR distinct',
      message: /10\.244\.128\.0\/17 overlaps the legacy pod CIDR 10\.244\.0\.0\/16/,
    },
    {
      name: 'the same VXLAN port for both overlays',
      inject: () => patchCiliumConfig({ 'tunnel-port': '8472' }),
      undo: () => patchCiliumConfig({ 'tunnel-port': '8473' }),
      check: 'tunnel ports',
      message: /Cilium \(VXLAN on UDP 8472\) and flannel \(VXLAN on UDP 8472\) both bind UDP 8472/,
    },
    {
      name: 'Cilium not in migration mode',
      inject: () => patchCiliumConfig({ 'custom-cni-conf': 'false' }),
      undo: () => patchCiliumConfig({ 'custom-cni-conf': 'true' }),
      check: 'migration mode',
      message: /takes over every node's CNI at once/,
    },
    {
      name: 'no CiliumNodeConfig API served',
      inject: () => cp.kubectl(['delete', 'crd', 'ciliumnodeconfigs.cilium.io']),
      undo: async () => {
        await cp.kubectl(['apply', '--server-side', '-f', ciliumCrdsFile]);
        await waitEstablished(cp, ['ciliumnodeconfigs.cilium.io']);
        await cp.kubectl(['apply', '--server-side', '-f', join(import.meta.dirname, '..', '..', 'manifests', 'ciliumnodeconfig.yaml')]);
      },
      check: 'CiliumNodeConfig API',
      message: /ciliumnodeconfigs\.cilium\.io is not served/,
    },
    {
      name: 'a PodDisruptionBudget allowing no disruption',
      inject: async () => {
        await cp.kubectl(['create', 'pdb', 'frozen', '--selector', 'app=nginx', '--max-unavailable', '0']);
        await eventually('frozen computed', async () => ((await cp.kubectl(['get', 'pdb', 'frozen', '-o', 'jsonpath={.status.expectedPods}'])).stdout === '10' ? true : undefined));
      },
      undo: () => cp.kubectl(['delete', 'pdb', 'frozen']),
      check: 'PodDisruptionBudgets',
      message: /allowing no disruption now: default\/frozen/,
    },
    {
      name: 'a node without a probe agent',
      inject: () => cp.kubectl(['-n', 'cilium-migrate', 'delete', 'pod', 'agent-kind-worker2', '--grace-period=0', '--force']),
      undo: () => createAgentPods(cp, ['kind-control-plane', 'kind-worker', 'kind-worker2']),
      check: 'probe agents',
      message: /no Ready probe agent on kind-worker2/,
    },
  ];
  for (const p of problems) {
    it(`fails on ${p.name}`, async () => {
      await p.inject();
      try {
        const r = await eventually(`preflight to see ${p.name}`, async () => {
          const res = await preflight();
          return checks(res.stdout).get(p.check)?.result === 'fail' ? res : undefined;
        }, 20_000, 500);
        assert.equal(r.code, ExitCode.precondition);
        const c = checks(r.stdout).get(p.check)!;
        assert.match(c.detail, p.message);
        assert.ok(c.fix, 'a fix is named');
        assert.match(r.stderr, new RegExp(`preflight: 1 check failed: ${p.check}`));
      } finally {
        await p.undo();
      }
    });
  }

  it('passes every check for a user bound only to the plugin\'s RBAC (manifests/rbac), object by object', async () => {
    for (const file of ['plugin.yaml', 'legacy/flannel.yaml']) await cp.kubectl(['apply', '--server-side', '-f', join(import.meta.dirname, '..', '..', 'manifests', 'rbac', file)]);
    const operator = await cp.userKubeconfig('operator', ['cilium-migrate']);
    const r = await preflight(operator);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const c = checks(r.stdout);
    assert.ok([...c.values()].every((x) => x.result === 'pass'), r.stdout);
    assert.match(c.get('permissions')!.detail, /^all \d+ permissions the plugin uses$/);
    // prepare creates the CiliumNodeConfig by server-side apply, which needs create (of that name) besides patch.
    await cp.kubectl(['-n', 'kube-system', 'delete', 'ciliumnodeconfigs.cilium.io', 'cilium-default']);
    const prepare = await runPlugin(['prepare', '--kubeconfig', operator], { env: { PATH: process.env.PATH ?? '', HOME: cp.rootDir } });
    assert.equal(prepare.code, 0, prepare.stdout + prepare.stderr);
    await cp.kubectl(['-n', 'kube-system', 'get', 'ciliumnodeconfigs.cilium.io', 'cilium-default']);
    // Another name is not the plugin's to create.
    const other = await runPlugin(['prepare', '--name', 'someone-elses', '--kubeconfig', operator], { env: { PATH: process.env.PATH ?? '', HOME: cp.rootDir } });
    assert.equal(other.code, ExitCode.forbidden, other.stderr);
    // Without Flannel's Role its configuration cannot even be read: the check names that object.
    await cp.kubectl(['-n', 'kube-flannel', 'delete', 'rolebinding', 'cilium-migrate']);
    const partial = await eventually('the Flannel binding gone', async () => {
      const res = await preflight(operator);
      return res.code !== 0 ? res : undefined;
    });
    assert.equal(checks(partial.stdout).get('permissions')!.detail, 'not allowed: get configmaps kube-flannel-cfg in kube-flannel');
    // Without the ClusterRole's binding the same user may do nothing the plugin needs.
    await cp.kubectl(['delete', 'clusterrolebinding', 'cilium-migrate']);
    const denied = await eventually('the binding gone', async () => {
      const res = await preflight(operator);
      return res.code === ExitCode.forbidden ? res : undefined;
    });
    assert.equal(denied.code, ExitCode.forbidden, denied.stderr);
  });

  it('fails the permission check for a user who may only read', async () => {
    await cp.kubectl(['create', 'clusterrole', 'read-only', '--verb=get,list,watch', '--resource=nodes,pods,daemonsets,poddisruptionbudgets,configmaps,customresourcedefinitions,networkpolicies,ciliumnodes.cilium.io,ciliumnodeconfigs.cilium.io,leases']);
    await cp.kubectl(['create', 'clusterrolebinding', 'read-only', '--clusterrole=read-only', '--user=reader']);
    const r = await preflight(await cp.userKubeconfig('reader'));
    assert.equal(r.code, ExitCode.precondition, r.stderr);
    const c = checks(r.stdout).get('permissions')!;
    assert.equal(c.result, 'fail');
    assert.match(c.detail, /not allowed: .*create pods\/eviction.*patch nodes/);
    assert.doesNotMatch(c.detail, /list nodes/);
  });
});

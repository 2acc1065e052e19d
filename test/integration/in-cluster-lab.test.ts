// run --in-cluster on the real-node lab: the Job's pod is the project's image, run by a real
// kubelet and containerd, the plugin inside it on its in-cluster credentials. The run pod sits on
// a worker, so the drain of its own node evicts it: the real kubelet sends SIGTERM, the run stops at
// a safe point and releases the lock, the Job starts a new pod on another node, which resumes from
// the state on the nodes; every node ends migrated, each step done once.
//
// The lab comes up without Cilium here (the run pod cannot restart kind nodes, and this test is
// about the run pod, not Cilium), so what the run needs of Cilium stands in, minimally: a `cilium` DaemonSet of the pause image labelled k8s-app=cilium (the
// agent pod the engine restarts and the cluster-state gate waits for), a CiliumNode per node whose
// podCIDRs are the node's Flannel subnet (so the verify pod's real address counts as Cilium's, as in
// the control-plane tests) and the migration's CiliumNodeConfig. The nodes are not restarted
// (--restart none) and no data path changes: this test is about the run pod, not Cilium.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { labDown, labUp } from '../../lab/cli.js';
import { ciliumCrdsFile } from '../../lab/cluster-objects.js';
import { defaultBinDir } from '../../lab/control-plane.js';
import { statePaths } from '../../lab/daemon.js';
import { inClusterRun } from '../../lib/defaults.js';
import { ciliumStandIn } from '../harness/migration-cluster.js';
import { repoRoot, runPlugin } from '../harness/plugin.js';

const labJs = join(repoRoot, 'dist', 'lab.js');
const kubectlBin = join(defaultBinDir(), 'kubectl');
const ns = 'cilium-migrate';

const standIns = `${ciliumStandIn({ image: 'registry.k8s.io/pause:3.10', gracePeriodSeconds: 1 })}---
apiVersion: v1
kind: Namespace
metadata: {name: ${ns}}
`;

interface Pod {
  metadata: { name: string; uid: string };
  spec: { nodeName?: string };
  status: { phase?: string; conditions?: { type: string; status: string; reason?: string }[]; containerStatuses?: { state?: { terminated?: { exitCode: number } } }[] };
}

describe('run --in-cluster on the real-node lab: the run pod evicted by its own drain', () => {
  let stateDir: string;
  const log: string[] = [];
  const kubectl = (args: string[], input?: string) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      const child = execFile(kubectlBin, [`--kubeconfig=${statePaths(stateDir).kubeconfig}`, ...args], { timeout: 120_000, maxBuffer: 32 * 1024 * 1024 }, (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }));
      if (input !== undefined) child.stdin?.end(input);
    });
  const must = async (args: string[], input?: string) => {
    const r = await kubectl(args, input);
    assert.equal(r.code, 0, `kubectl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };

  before(async () => {
    stateDir = mkdtempSync(join(tmpdir(), 'in-cluster-lab-'));
    // The lab without its real Cilium, whose DaemonSet the stand-in would replace.
    await labUp({ stateDir, nodes: 3, labJs, cilium: false, progress: (l) => log.push(l) });
    await must(['apply', '--server-side', '-f', ciliumCrdsFile]);
    await must(['wait', '--for=condition=Established', '--timeout=60s', 'crd/ciliumnodeconfigs.cilium.io', 'crd/ciliumnodes.cilium.io']);
    await must(['apply', '-f', '-'], standIns);
    const nodes = JSON.parse(await must(['get', 'nodes', '-o', 'json'])) as { items: { metadata: { name: string }; spec: { podCIDR: string } }[] };
    for (const n of nodes.items) await must(['apply', '--server-side', '-f', '-'], JSON.stringify({ apiVersion: 'cilium.io/v2', kind: 'CiliumNode', metadata: { name: n.metadata.name }, spec: { ipam: { podCIDRs: [n.spec.podCIDR] } } }));
    await must(['apply', '--server-side', '-f', join(repoRoot, 'manifests', 'ciliumnodeconfig.yaml')]);
    for (const file of ['plugin.yaml', 'in-cluster.yaml']) await must(['apply', '--server-side', '-f', join(repoRoot, 'manifests', 'rbac', file)]);
    await must(['-n', 'kube-system', 'rollout', 'status', 'ds/cilium', '--timeout=120s']);
  });

  after(async () => {
    if (stateDir && existsSync(stateDir)) await labDown({ stateDir, progress: (l) => log.push(l) }).catch(() => undefined);
  });

  it('migrates every node unattended; the evicted run pod stops at a safe point and a new pod resumes; each step once', async () => {
    const r = await runPlugin(['run', '--in-cluster', '--restart', 'none', '--gate', 'cluster-state', '--gate-rounds', '1', '--gate-interval', '1s', '--kubeconfig', statePaths(stateDir).kubeconfig], { env: { PATH: process.env.PATH ?? '', HOME: stateDir }, timeoutMs: 600_000 });
    assert.equal(r.code, 0, r.stderr.slice(-4000));
    // The follower streamed the real pods' logs (the evicted pods themselves are gone once the Job
    // controller has counted them): a pod evicted by the drain of its own node, its SIGTERM and stop
    // at a safe point, then a new pod on another node resuming that drain.
    const evicted = [...r.stderr.matchAll(/^pod (\S+) on (\S+): stopped by the cluster \(EvictionByEvictionAPI/gm)].map((m) => ({ pod: m[1]!, node: m[2]! }));
    assert.ok(evicted.length >= 1, 'a run pod was evicted');
    const first = evicted[0]!;
    const after = r.stderr.slice(r.stderr.indexOf(`pod ${first.pod} on ${first.node}: stopped by the cluster`));
    assert.match(r.stderr, new RegExp(`\\[${first.node}\\] drain: started\\n[^]*SIGTERM: stopping at the next safe point[^]*error: drain of ${first.node} interrupted`), 'it stopped in the drain of its own node');
    const next = /^pod (\S+) on (\S+): Running$/m.exec(after);
    assert.ok(next && next[1] !== first.pod && next[2] !== first.node, `a new pod on another node: ${next?.[0]}`);
    assert.match(after, new RegExp(`^\\[${first.node}\\] resuming at drain `, 'm'));
    assert.match(r.stderr, /finished: every node is migrated/);

    const pods = (JSON.parse(await must(['-n', ns, 'get', 'pods', '-l', `batch.kubernetes.io/job-name=${inClusterRun.name}`, '-o', 'json'])) as { items: Pod[] }).items;
    assert.deepEqual(pods.map((p) => p.status.phase), ['Succeeded']);
    const job = JSON.parse(await must(['-n', ns, 'get', 'job', inClusterRun.name, '-o', 'json'])) as { status: { failed?: number; succeeded?: number } };
    assert.equal(job.status.succeeded, 1);
    assert.equal(job.status.failed ?? 0, 0, 'the evictions did not count as failures');

    const status = await runPlugin(['status', '--kubeconfig', statePaths(stateDir).kubeconfig], { env: { PATH: process.env.PATH ?? '', HOME: stateDir } });
    assert.match(status.stdout, /^3 of 3 nodes migrated, /m);
    assert.match(status.stdout, /^in-cluster run: job cilium-migrate\/cilium-migrate-run, finished /m);
    assert.match(status.stdout, /the run finished \(/, 'the last pod recorded its end on the Job');
    const events = (JSON.parse(await must(['get', 'events', '-A', '-o', 'json'])) as { items: { reason: string; involvedObject: { kind: string; name: string } }[] }).items;
    for (const node of ['kind-control-plane', 'kind-worker', 'kind-worker2']) {
      for (const reason of ['MigrationCordon', 'MigrationDrain', 'MigrationLabel', 'MigrationUncordon', 'MigrationComplete']) {
        assert.equal(events.filter((e) => e.involvedObject.kind === 'Node' && e.involvedObject.name === node && e.reason === reason).length, 1, `${node} ${reason} once`);
      }
    }
  });
});

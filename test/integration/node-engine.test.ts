// `kubectl cilium-migrate node` as a real process against a real control plane: a full run, the
// runs killed at every step boundary and mid-drain, PodDisruptionBudgets, an API server restart,
// and the inputs it must refuse without changing anything.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ExitCode } from '../../lib/errors.js';
import { migrationSteps as stepNames } from '../../lib/node-state.js';
import { freePort, type ControlPlane } from '../../lab/control-plane.js';
import { createCiliumNodes, deploymentsAvailable, startMigrationCluster } from '../harness/migration-cluster.js';
import { repoRoot, runPlugin } from '../harness/plugin.js';
import { progress } from '../harness/shared-cluster.js';
import { eventually } from '../harness/wait.js';

interface Node {
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec: { unschedulable?: boolean; podCIDR?: string };
}
interface Pod {
  metadata: { name: string; uid: string; namespace: string };
  spec: { nodeName?: string };
  status: { phase?: string; conditions?: { type: string; status: string }[] };
}

const label = 'io.cilium.migration/cilium-default';

describe('kubectl cilium-migrate node', () => {
  let cp: ControlPlane;
  let spreads = 0;
  const env = () => ({ PATH: process.env.PATH ?? '', HOME: cp.rootDir });
  // kwok nodes run no probe agents, so these runs use the gate that needs none (--gate cluster-state);
  // the matrix gate is tested with real agents in connectivity-gate-engine.test.ts.
  const base = (node: string, ...extra: string[]) => ['node', node, '--kubeconfig', cp.kubeconfig, '--restart', 'none', '--gate', 'cluster-state', '--gate-rounds', '1', '--gate-interval', '1s', ...extra];
  const node = (name: string) => cp.get<Node>(`/api/v1/nodes/${name}`);
  const agentPod = async (name: string) => (await cp.get<{ items: Pod[] }>(`/api/v1/namespaces/kube-system/pods?labelSelector=k8s-app%3Dcilium&fieldSelector=spec.nodeName%3D${name}`)).items[0];
  const podsOn = async (name: string, ns = 'default') => (await cp.get<{ items: Pod[] }>(`/api/v1/namespaces/${ns}/pods?fieldSelector=spec.nodeName%3D${name}`)).items;
  /** Rolls `deployment` until at least `min` of its (non-terminating) pods run on `name`. */
  const spreadOnto = async (deployment: string, name: string, min: number) => {
    await eventually(`${min} ${deployment} pods on ${name}`, async () => {
      const d = await cp.get<{ metadata: { generation: number }; spec: { replicas: number }; status: { observedGeneration?: number; updatedReplicas?: number; availableReplicas?: number; replicas?: number } }>(`/apis/apps/v1/namespaces/default/deployments/${deployment}`);
      const settled = d.status.observedGeneration === d.metadata.generation && d.status.updatedReplicas === d.spec.replicas && d.status.availableReplicas === d.spec.replicas && d.status.replicas === d.spec.replicas;
      if (!settled) return undefined;
      const all = await cp.get<{ items: (Pod & { metadata: { deletionTimestamp?: string } })[] }>(`/api/v1/namespaces/default/pods?labelSelector=app%3D${deployment}`);
      if (all.items.some((p) => p.metadata.deletionTimestamp)) return undefined;
      if (all.items.filter((p) => p.spec.nodeName === name).length >= min) return true;
      await cp.kubectl(['patch', 'deployment', deployment, '--type=merge', '-p', JSON.stringify({ spec: { template: { metadata: { annotations: { 'test/spread': String(++spreads) } } } } })]);
      return undefined;
    }, 90_000, 1000);
  };
  /** Puts a node back as it was before any migration, and spreads nginx over the nodes again. */
  const reset = async (name: string) => {
    await cp.kubectl(['label', 'node', name, `${label}-`]);
    await cp.kubectl(['annotate', 'node', name, 'cilium-migrate.io/state-', 'cilium-migrate.io/phase-']);
    await cp.kubectl(['uncordon', name]);
    await cp.kubectl(['patch', 'deployment', 'nginx', '--type=merge', '-p', JSON.stringify({ spec: { template: { metadata: { annotations: { 'test/spread': String(++spreads) } } } } })]);
    await eventually('nginx rolled out', async () => {
      const d = await cp.get<{ metadata: { generation: number }; status: { observedGeneration?: number; updatedReplicas?: number; availableReplicas?: number; replicas?: number } }>('/apis/apps/v1/namespaces/default/deployments/nginx');
      return d.status.observedGeneration === d.metadata.generation && d.status.updatedReplicas === 10 && d.status.availableReplicas === 10 && d.status.replicas === 10 ? true : undefined;
    });
    // After an API server outage the node lifecycle controller may mark every pod not Ready until
    // kwok reports them again (lab/kwok-stages); a run started before that fails its baseline gate.
    await eventually('every Cilium agent pod Ready', async () => {
      const agents = (await cp.get<{ items: Pod[] }>('/api/v1/namespaces/kube-system/pods?labelSelector=k8s-app%3Dcilium')).items;
      return agents.length > 0 && agents.every((p) => p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')) ? true : undefined;
    }, 120_000, 500);
  };
  const assertMigrated = async (name: string) => {
    const n = await node(name);
    assert.equal(n.metadata.labels?.[label], 'true', `${name} labelled`);
    assert.equal(n.metadata.annotations?.['cilium-migrate.io/phase'], 'migrated', `${name} phase migrated`);
    assert.notEqual(n.spec.unschedulable, true, `${name} uncordoned`);
    await eventually('every Deployment fully available', async () => ((await deploymentsAvailable(cp, 'default')) ? true : undefined), 30_000);
  };

  before(async () => {
    cp = await startMigrationCluster(progress, 3);
  });
  after(() => cp?.stop());

  it('migrates a worker: cordon, evict, label, replace the agent pod, uncordon, record migrated; a rerun changes nothing', async () => {
    const agentBefore = await agentPod('kind-worker');
    const nginxBefore = await podsOn('kind-worker');
    assert.ok(nginxBefore.length > 0, 'nginx runs on kind-worker');
    let sawCordon = false;
    const r = await runPlugin(base('kind-worker', '-o', 'json'), { env: env(), onStderr: (t) => (sawCordon ||= /cordon: cordoned/.test(t)) });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(sawCordon);
    const [result] = JSON.parse(r.stdout) as { node: string; result: string; steps: { step: string; outcome: string }[] }[];
    assert.equal(result?.result, 'migrated');
    assert.deepEqual(result?.steps.map((s) => s.step), [...stepNames]);
    assert.equal(result?.steps.find((s) => s.step === 'drain')?.outcome, 'applied');

    await assertMigrated('kind-worker');
    const agentAfter = await agentPod('kind-worker');
    assert.ok(agentAfter && agentAfter.metadata.uid !== agentBefore?.metadata.uid, 'the Cilium agent pod was replaced');
    const left = new Set((await podsOn('kind-worker')).map((p) => p.metadata.uid));
    assert.ok(nginxBefore.every((p) => !left.has(p.metadata.uid)), 'the nginx pods that ran there were evicted');
    const events = await cp.get<{ items: { reason: string; involvedObject: { name: string } }[] }>('/api/v1/namespaces/default/events');
    const reasons = new Set(events.items.filter((e) => e.involvedObject.name === 'kind-worker').map((e) => e.reason));
    for (const reason of ['MigrationCordon', 'MigrationDrain', 'MigrationLabel', 'MigrationAgentRestart', 'MigrationUncordon', 'MigrationComplete']) assert.ok(reasons.has(reason), `event ${reason}`);

    const snapshot = JSON.stringify(await node('kind-worker'), ['metadata', 'labels', 'annotations', 'spec', 'unschedulable']);
    const again = await runPlugin(base('kind-worker'), { env: env() });
    assert.equal(again.code, ExitCode.precondition);
    assert.match(again.stderr, /^error: node kind-worker is already migrated/);
    assert.equal(JSON.stringify(await node('kind-worker'), ['metadata', 'labels', 'annotations', 'spec', 'unschedulable']), snapshot, 'the rerun changed nothing');
  });

  it('restarts the node with an exec command and sees it back by its new bootID; a node cordoned before stays cordoned', async () => {
    await cp.kubectl(['cordon', 'kind-worker2']);
    const kubectl = join(cp.binDir, 'kubectl');
    const emulateReboot = `${kubectl} --kubeconfig ${cp.kubeconfig} patch node {node} --subresource=status --type=merge -p '{"status":{"nodeInfo":{"bootID":"rebooted-'$$'"}}}'`;
    const r = await runPlugin(['node', 'kind-worker2', '--kubeconfig', cp.kubeconfig, '--restart', 'exec', '--restart-command', emulateReboot, '--gate', 'cluster-state', '--gate-rounds', '1', '--gate-interval', '1s'], { env: env() });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /restart-node: restarted \(exec\): bootID changed/);
    assert.match(r.stderr, /cordon: already cordoned by someone else; it stays cordoned after the migration/);
    assert.match(r.stderr, /uncordon: left cordoned: it was cordoned by someone else, not by this migration/);
    const n = await node('kind-worker2');
    assert.equal(n.spec.unschedulable, true, 'still cordoned');
    assert.equal(n.metadata.annotations?.['cilium-migrate.io/phase'], 'migrated');
    await reset('kind-worker2');
  });

  it('resumes to completion after being SIGKILLed at every step boundary', async () => {
    const boundaries = stepNames.flatMap((s) => [`${s}:intent`, `${s}:done`]);
    for (const at of boundaries) {
      await reset('kind-worker3');
      const killed = await runPlugin(base('kind-worker3'), { env: { ...env(), CILIUM_MIGRATE_TEST_KILL_AT: at } });
      assert.equal(killed.signal, 'SIGKILL', `killed at ${at}: ${killed.stderr}`);
      const phase = (await node('kind-worker3')).metadata.annotations?.['cilium-migrate.io/phase'];
      assert.ok(phase && phase !== 'migrated', `killed at ${at}, the node records an unfinished phase (${phase})`);
      const resumed = await runPlugin(base('kind-worker3'), { env: env() });
      assert.equal(resumed.code, 0, `resume after ${at}: ${resumed.stderr}`);
      assert.match(resumed.stderr, /resuming at /);
      await assertMigrated('kind-worker3');
    }
  });

  describe('with a PodDisruptionBudget on a slow-to-drain Deployment', () => {
    const minAvailable = 5;
    before(async () => {
      await cp.kubectl(['create', 'deployment', 'guarded', '--image', 'nginx', '--replicas', '6']);
      await cp.kubectl(['create', 'poddisruptionbudget', 'guarded', '--selector', 'app=guarded', '--min-available', String(minAvailable)]);
      await eventually('guarded available and its PDB observed', async () => {
        const pdb = await cp.get<{ metadata: { generation: number }; status?: { observedGeneration?: number; currentHealthy?: number } }>('/apis/policy/v1/namespaces/default/poddisruptionbudgets/guarded');
        return pdb.status?.observedGeneration === pdb.metadata.generation && pdb.status.currentHealthy === 6 ? true : undefined;
      });
    });

    it('never lets available pods drop below minAvailable, and resumes after a SIGKILL mid-drain', async () => {
      // `held` runs only where test/held=yes: at first only on kind-worker3, so its replacements
      // stay Pending and the PDB (minAvailable 2 of 3) must hold back the second eviction.
      await reset('kind-worker3');
      await cp.kubectl(['label', 'node', 'kind-worker3', 'test/held=yes']);
      await cp.kubectl(['apply', '-f', '-'], {
        input: JSON.stringify({
          apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'held', namespace: 'default' },
          spec: { replicas: 3, selector: { matchLabels: { app: 'held' } }, template: { metadata: { labels: { app: 'held' } }, spec: { nodeSelector: { 'test/held': 'yes' }, containers: [{ name: 'c', image: 'nginx' }] } } },
        }),
      });
      await cp.kubectl(['create', 'poddisruptionbudget', 'held', '--selector', 'app=held', '--min-available', '2']);
      const readyHeld = async () =>
        (await cp.get<{ items: (Pod & { metadata: { deletionTimestamp?: string } })[] }>('/api/v1/namespaces/default/pods?labelSelector=app%3Dheld')).items.filter(
          (p) => !p.metadata.deletionTimestamp && p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
        ).length;
      await eventually('held available and its PDB observed', async () => {
        const pdb = await cp.get<{ metadata: { generation: number }; status?: { observedGeneration?: number; currentHealthy?: number } }>('/apis/policy/v1/namespaces/default/poddisruptionbudgets/held');
        return pdb.status?.observedGeneration === pdb.metadata.generation && pdb.status.currentHealthy === 3 ? true : undefined;
      });
      let lowest = Infinity;
      let watching = true;
      const watcher = (async () => {
        while (watching) {
          lowest = Math.min(lowest, await readyHeld());
          await new Promise((r) => setTimeout(r, 100));
        }
      })();
      try {
        const killed = await runPlugin(base('kind-worker3'), {
          env: env(),
          onStderr: (text, kill) => {
            // Killed while the PDB holds back an eviction: mid-drain by construction.
            if (/drain: evicting, .*blocked: default\/held-/.test(text)) kill('SIGKILL');
          },
        });
        assert.equal(killed.signal, 'SIGKILL', killed.stderr);
        assert.equal((await node('kind-worker3')).metadata.annotations?.['cilium-migrate.io/phase'], 'drain', 'killed mid-drain');
        await cp.kubectl(['label', 'node', 'kind-worker2', 'test/held=yes']);
        const resumed = await runPlugin(base('kind-worker3'), { env: env() });
        assert.equal(resumed.code, 0, resumed.stderr);
        await assertMigrated('kind-worker3');
      } finally {
        watching = false;
        await watcher;
        await cp.kubectl(['delete', 'deployment', 'held']);
        await cp.kubectl(['delete', 'poddisruptionbudget', 'held']);
        await cp.kubectl(['label', 'node', 'kind-worker2', 'kind-worker3', 'test/held-']);
      }
      assert.ok(lowest >= 2, `available held pods never below minAvailable 2 (lowest seen: ${lowest})`);
    });

    it('completes a drain during which the API server restarts', async () => {
      await reset('kind-worker3');
      await spreadOnto('guarded', 'kind-worker3', 2);
      let restarting: Promise<void> | undefined;
      const r = await runPlugin(base('kind-worker3'), {
        env: env(),
        onStderr: (text) => {
          if (!restarting && /drain: started/.test(text)) restarting = new Promise((res) => setTimeout(res, 500)).then(() => cp.restartApiserver(2000));
        },
      });
      await restarting;
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /API server unreachable during \w+; retrying/);
      await assertMigrated('kind-worker3');
    });

    it('times out on a PDB that allows no disruption, leaving the node cordoned with its phase recorded', async () => {
      await reset('kind-worker3');
      await spreadOnto('guarded', 'kind-worker3', 1);
      await cp.kubectl(['patch', 'poddisruptionbudget', 'guarded', '--type=merge', '-p', '{"spec":{"minAvailable":6}}']);
      try {
        await eventually('the stricter PDB observed', async () => {
          const pdb = await cp.get<{ metadata: { generation: number }; status?: { observedGeneration?: number; disruptionsAllowed?: number } }>('/apis/policy/v1/namespaces/default/poddisruptionbudgets/guarded');
          return pdb.status?.observedGeneration === pdb.metadata.generation && pdb.status.disruptionsAllowed === 0 ? true : undefined;
        });
        const r = await runPlugin(base('kind-worker3', '--drain-timeout', '8s'), { env: env() });
        assert.equal(r.code, ExitCode.timeout, r.stderr);
        assert.match(r.stderr, /drain of kind-worker3 timed out after 8s/);
        assert.match(r.stderr, /disruption budget/);
        const n = await node('kind-worker3');
        assert.equal(n.spec.unschedulable, true, 'still cordoned');
        assert.equal(n.metadata.annotations?.['cilium-migrate.io/phase'], 'drain');
      } finally {
        await cp.kubectl(['patch', 'poddisruptionbudget', 'guarded', '--type=merge', '-p', `{"spec":{"minAvailable":${minAvailable}}}`]);
      }
      const resumed = await runPlugin(base('kind-worker3'), { env: env() });
      assert.equal(resumed.code, 0, resumed.stderr);
      await assertMigrated('kind-worker3');
    });

    /** A restart command that records which guarded pods are on the node when it is asked to restart, then "reboots" it. */
    const recordingRestart = () => {
      const file = join(cp.rootDir, `at-restart-${Date.now()}`);
      const kubectl = join(cp.binDir, 'kubectl');
      const command = `${kubectl} --kubeconfig ${cp.kubeconfig} get pods -l app=guarded --field-selector spec.nodeName={node} -o name > ${file}; ` +
        `${kubectl} --kubeconfig ${cp.kubeconfig} patch node {node} --subresource=status --type=merge -p '{"status":{"nodeInfo":{"bootID":"rebooted-'$$'"}}}'`;
      return { file, args: ['--restart', 'exec', '--restart-command', command] };
    };
    const baseExec = (name: string, restart: string[], ...extra: string[]) => ['node', name, '--kubeconfig', cp.kubeconfig, ...restart, '--gate', 'cluster-state', '--gate-rounds', '1', '--gate-interval', '1s', ...extra];

    it('evicts the pods that land on the node after its drain (their PDB honoured) before it requests the restart', async () => {
      await reset('kind-worker3');
      const restart = recordingRestart();
      // Drained, labelled, agent restarted: stopped just before restart-node.
      const killed = await runPlugin(baseExec('kind-worker3', restart.args), { env: { ...env(), CILIUM_MIGRATE_TEST_KILL_AT: 'kind-worker3/restart-agent:done' } });
      assert.equal(killed.signal, 'SIGKILL', killed.stderr);
      // Meanwhile its admin uncordons it and guarded pods land there.
      await cp.kubectl(['uncordon', 'kind-worker3']);
      await spreadOnto('guarded', 'kind-worker3', 2);
      const readyGuarded = async () =>
        (await cp.get<{ items: (Pod & { metadata: { deletionTimestamp?: string } })[] }>('/api/v1/namespaces/default/pods?labelSelector=app%3Dguarded')).items.filter(
          (p) => !p.metadata.deletionTimestamp && p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
        ).length;
      let lowest = Infinity;
      let watching = true;
      const watcher = (async () => {
        while (watching) {
          lowest = Math.min(lowest, await readyGuarded());
          await new Promise((r) => setTimeout(r, 100));
        }
      })();
      let r;
      try {
        r = await runPlugin(baseExec('kind-worker3', restart.args), { env: env() });
      } finally {
        watching = false;
        await watcher;
      }
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /restart-node: kind-worker3 had been made schedulable again; cordoned it again/);
      assert.match(r.stderr, /restart-node: \d+ pods arrived after the drain: default\/guarded-[^;]*; evicting them before the restart/);
      assert.equal(readFileSync(restart.file, 'utf8'), '', 'no guarded pod on the node when the restart was requested');
      assert.ok(lowest >= minAvailable, `available guarded pods never below minAvailable ${minAvailable} (lowest seen: ${lowest})`);
      await assertMigrated('kind-worker3');
    });

    it('or, while their PDB allows no eviction, stops with the node cordoned and nothing restarted', async () => {
      await reset('kind-worker3');
      const restart = recordingRestart();
      const killed = await runPlugin(baseExec('kind-worker3', restart.args), { env: { ...env(), CILIUM_MIGRATE_TEST_KILL_AT: 'kind-worker3/restart-agent:done' } });
      assert.equal(killed.signal, 'SIGKILL', killed.stderr);
      await cp.kubectl(['uncordon', 'kind-worker3']);
      await spreadOnto('guarded', 'kind-worker3', 1);
      await cp.kubectl(['patch', 'poddisruptionbudget', 'guarded', '--type=merge', '-p', '{"spec":{"minAvailable":6}}']);
      try {
        await eventually('the stricter PDB observed', async () => {
          const pdb = await cp.get<{ metadata: { generation: number }; status?: { observedGeneration?: number; disruptionsAllowed?: number } }>('/apis/policy/v1/namespaces/default/poddisruptionbudgets/guarded');
          return pdb.status?.observedGeneration === pdb.metadata.generation && pdb.status.disruptionsAllowed === 0 ? true : undefined;
        });
        const r = await runPlugin(baseExec('kind-worker3', restart.args, '--drain-timeout', '8s'), { env: env() });
        assert.equal(r.code, ExitCode.timeout, r.stderr);
        assert.match(r.stderr, /drain of kind-worker3 timed out after 8s with \d+ pods? left:\n  default\/guarded-[a-z0-9-]+: .*disruption budget/);
        assert.equal(existsSync(restart.file), false, 'the restart was never requested');
        const n = await node('kind-worker3');
        assert.equal(n.spec.unschedulable, true, 'still cordoned');
        assert.equal(n.metadata.annotations?.['cilium-migrate.io/phase'], 'restart-node');
      } finally {
        await cp.kubectl(['patch', 'poddisruptionbudget', 'guarded', '--type=merge', '-p', `{"spec":{"minAvailable":${minAvailable}}}`]);
      }
      const resumed = await runPlugin(baseExec('kind-worker3', restart.args), { env: env() });
      assert.equal(resumed.code, 0, resumed.stderr);
      assert.equal(readFileSync(restart.file, 'utf8'), '');
      await assertMigrated('kind-worker3');
    });

    it('stops with a clear error on a pod that two PDBs cover', async () => {
      await reset('kind-worker3');
      await spreadOnto('guarded', 'kind-worker3', 1);
      await cp.kubectl(['create', 'poddisruptionbudget', 'guarded-too', '--selector', 'app=guarded', '--max-unavailable', '1']);
      try {
        const r = await runPlugin(base('kind-worker3'), { env: env() });
        assert.equal(r.code, ExitCode.precondition, r.stderr);
        assert.match(r.stderr, /cannot evict default\/guarded-[a-z0-9-]+: .*more than one PodDisruptionBudget/);
        assert.match(r.stderr, /hint: make sure at most one PodDisruptionBudget selects the pod/);
      } finally {
        await cp.kubectl(['delete', 'poddisruptionbudget', 'guarded-too']);
      }
      const resumed = await runPlugin(base('kind-worker3'), { env: env() });
      assert.equal(resumed.code, 0, resumed.stderr);
    });
  });

  it('refuses an unmanaged pod without --force before cordoning or evicting anything', async () => {
    await reset('kind-worker3');
    await cp.kubectl(['run', 'lonely', '--image', 'busybox', '--overrides', '{"spec":{"nodeName":"kind-worker3"}}']);
    try {
      const before = (await podsOn('kind-worker3')).map((p) => p.metadata.uid).sort();
      const r = await runPlugin(base('kind-worker3'), { env: env() });
      assert.equal(r.code, ExitCode.precondition, r.stderr);
      assert.match(r.stderr, /cannot drain kind-worker3: 1 pod cannot be evicted safely:\n  default\/lonely: not managed by a controller.*needs --force/);
      assert.deepEqual((await podsOn('kind-worker3')).map((p) => p.metadata.uid).sort(), before, 'nothing evicted');
      const n = await node('kind-worker3');
      assert.notEqual(n.spec.unschedulable, true, 'not cordoned');
      assert.equal(n.metadata.annotations?.['cilium-migrate.io/state'], undefined, 'no state recorded');
    } finally {
      await cp.kubectl(['delete', 'pod', 'lonely', '--grace-period=0', '--force']);
    }
  });

  it('fails verify when new pods do not get Cilium addresses, and resumes at verify once they do', async () => {
    await reset('kind-worker3');
    await createCiliumNodes(cp, (n, podCIDR) => (n === 'kind-worker3' ? ['10.245.3.0/24'] : [podCIDR]));
    const r = await runPlugin(base('kind-worker3', '--verify-timeout', '30s'), { env: env() });
    assert.equal(r.code, ExitCode.gateFail, r.stderr);
    assert.match(r.stderr, /verify for kind-worker3: FAIL\n  a new pod on kind-worker3 got 10\.244\.\d+\.\d+, outside its Cilium pod CIDRs 10\.245\.3\.0\/24/);
    const n = await node('kind-worker3');
    assert.equal(n.spec.unschedulable, true);
    assert.equal(n.metadata.annotations?.['cilium-migrate.io/phase'], 'verify');
    await createCiliumNodes(cp, (_n, podCIDR) => [podCIDR]);
    const resumed = await runPlugin(base('kind-worker3'), { env: env() });
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stderr, /resuming at verify/);
    await assertMigrated('kind-worker3');
  });

  it('--dry-run prints every step and why, and changes nothing', async () => {
    await reset('kind-worker3');
    const before = JSON.stringify(await node('kind-worker3'), ['metadata', 'labels', 'annotations', 'spec', 'unschedulable']);
    const pods = (await podsOn('kind-worker3')).map((p) => p.metadata.uid).sort();
    const r = await runPlugin(base('kind-worker3', '--dry-run', '--disable-eviction', '-o', 'json'), { env: env() });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /warning: --disable-eviction deletes pods directly: PodDisruptionBudgets are NOT respected/);
    const [result] = JSON.parse(r.stdout) as { result: string; steps: { step: string; outcome: string; message: string }[] }[];
    assert.equal(result?.result, 'dry-run');
    assert.deepEqual(result?.steps.map((s) => s.step), [...stepNames]);
    assert.match(result?.steps.find((s) => s.step === 'cordon')?.message ?? '', /cordon kind-worker3/);
    assert.match(result?.steps.find((s) => s.step === 'drain')?.message ?? '', /evict \d+ pods?: default\/nginx-/);
    for (const s of stepNames) assert.match(r.stderr, new RegExp(`\\[kind-worker3\\] ${s}: `), `the log names ${s}`);
    assert.equal(JSON.stringify(await node('kind-worker3'), ['metadata', 'labels', 'annotations', 'spec', 'unschedulable']), before, 'the node is unchanged');
    assert.deepEqual((await podsOn('kind-worker3')).map((p) => p.metadata.uid).sort(), pods, 'no pod was evicted');
  });

  it('stops at a safe point on Ctrl-C (SIGINT) with exit 130 and the phase recorded, and resumes', async () => {
    await reset('kind-worker3');
    await spreadOnto('nginx', 'kind-worker3', 1);
    await cp.kubectl(['create', 'poddisruptionbudget', 'frozen', '--selector', 'app=nginx', '--max-unavailable', '0']);
    try {
      await eventually('frozen observed', async () => {
        const pdb = await cp.get<{ metadata: { generation: number }; status?: { observedGeneration?: number; expectedPods?: number } }>('/apis/policy/v1/namespaces/default/poddisruptionbudgets/frozen');
        return pdb.status?.observedGeneration === pdb.metadata.generation && pdb.status.expectedPods === 10 ? true : undefined;
      });
      let interrupted = false;
      const r = await runPlugin(base('kind-worker3'), {
        env: env(),
        onStderr: (text, kill) => {
          if (!interrupted && /blocked: .*PDB frozen/.test(text)) {
            interrupted = true;
            kill('SIGINT');
          }
        },
      });
      assert.equal(r.code, ExitCode.interrupted, r.stderr);
      assert.match(r.stderr, /SIGINT: stopping at the next safe point/);
      assert.match(r.stderr, /error: drain of kind-worker3 interrupted/);
      const n = await node('kind-worker3');
      assert.equal(n.spec.unschedulable, true, 'still cordoned');
      assert.equal(n.metadata.annotations?.['cilium-migrate.io/phase'], 'drain');
      const lease = await cp.get<{ spec: { holderIdentity?: string } }>('/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/cilium-migrate').catch(() => undefined);
      assert.equal(lease, undefined, 'the lock was released');
    } finally {
      await cp.kubectl(['delete', 'poddisruptionbudget', 'frozen']);
    }
    const resumed = await runPlugin(base('kind-worker3'), { env: env() });
    assert.equal(resumed.code, 0, resumed.stderr);
    await assertMigrated('kind-worker3');
  });

  it('refuses to act while another run renews the lock, and takes over a lock it watched go unrenewed for its duration', async () => {
    await reset('kind-worker3');
    const micro = (d: Date) => d.toISOString().replace('Z', '000Z');
    const lease = (renewTime: string, seconds: number) => JSON.stringify({
      apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'cilium-migrate', namespace: 'kube-system' },
      spec: { holderIdentity: 'host=other-machine;machine=0123456789abcdef;boot=b;pid=4242;run=r-other', leaseDurationSeconds: seconds, renewTime, acquireTime: renewTime },
    });
    // A live holder on another machine: it renews every second. Its renewTime is set an hour in
    // the past (a skewed clock over there): only whether it changes counts.
    await cp.kubectl(['apply', '-f', '-'], { input: lease(micro(new Date(Date.now() - 3_600_000)), 60) });
    let renewing = true;
    const holder = (async () => {
      for (let i = 1; renewing; i++) {
        await cp.kubectl(['apply', '-f', '-'], { input: lease(micro(new Date(Date.now() - 3_600_000 + i * 1000)), 60) });
        await new Promise((r) => setTimeout(r, 1000));
      }
    })();
    const before = JSON.stringify(await node('kind-worker3'), ['metadata', 'labels', 'annotations', 'spec', 'unschedulable']);
    let held;
    let others;
    try {
      held = await runPlugin(base('kind-worker3'), { env: env() });
      // prepare and finalize change the cluster too: they take the same lock.
      others = [await runPlugin(['prepare', '--kubeconfig', cp.kubeconfig], { env: env() }), await runPlugin(['finalize', '--yes', '--kubeconfig', cp.kubeconfig], { env: env() })];
    } finally {
      renewing = false;
      await holder;
    }
    for (const r of others) {
      assert.equal(r.code, ExitCode.locked, r.stderr);
      assert.match(r.stderr, /another migration run holds the lock .*it renewed the lease while we watched/);
    }
    assert.equal(held.code, ExitCode.locked, held.stderr);
    assert.match(held.stderr, /the migration lock \(lease kube-system\/cilium-migrate\) is held by run r-other \(pid 4242 on other-machine\); watching for up to 60s/);
    assert.match(held.stderr, /error: another migration run holds the lock \(lease kube-system\/cilium-migrate\): run r-other \(pid 4242 on other-machine\); it renewed the lease while we watched/);
    assert.equal(JSON.stringify(await node('kind-worker3'), ['metadata', 'labels', 'annotations', 'spec', 'unschedulable']), before, 'nothing changed');

    // A holder that stopped: its renewTime looks fresh on our clock (skew again), but it does not change.
    await cp.kubectl(['apply', '-f', '-'], { input: lease(micro(new Date(Date.now() + 3_600_000)), 4) });
    const taken = await runPlugin(base('kind-worker3'), { env: env() });
    assert.equal(taken.code, 0, taken.stderr);
    assert.match(taken.stderr, /taking over the migration lock: its holder \(run r-other \(pid 4242 on other-machine\)\) did not renew it during the [45]s we watched \(its TTL is 4s\)/);
    await assertMigrated('kind-worker3');
  });

  it('stops before its next change when the API server is away longer than the lock TTL, and a rerun resumes', async () => {
    await reset('kind-worker3');
    await spreadOnto('nginx', 'kind-worker3', 1);
    await cp.kubectl(['create', 'poddisruptionbudget', 'frozen', '--selector', 'app=nginx', '--max-unavailable', '0']);
    const held = (await podsOn('kind-worker3')).filter((p) => p.metadata.name.startsWith('nginx-')).map((p) => p.metadata.uid).sort();
    let outage: Promise<void> | undefined;
    let backAt = 0;
    let r;
    try {
      await eventually('frozen observed', async () => {
        const pdb = await cp.get<{ metadata: { generation: number }; status?: { observedGeneration?: number; expectedPods?: number } }>('/apis/policy/v1/namespaces/default/poddisruptionbudgets/frozen');
        return pdb.status?.observedGeneration === pdb.metadata.generation && pdb.status.expectedPods === 10 ? true : undefined;
      });
      r = await runPlugin(base('kind-worker3', '--lock-ttl', '10s'), {
        env: env(),
        onStderr: (text) => {
          // Mid-drain (a budget holds an eviction back), the API server goes away for 16 s > 10 s.
          if (!outage && /blocked: .*PDB frozen/.test(text)) outage = cp.restartApiserver(16_000).then(() => void (backAt = Date.now()));
        },
      });
      await outage;
    } finally {
      // The change the stopped run would have made next: with the budget gone it would evict.
      await cp.kubectl(['delete', 'poddisruptionbudget', 'frozen']);
    }
    assert.equal(r.code, ExitCode.locked, r.stderr);
    assert.match(r.stderr, /error: lost the migration lock: it was last renewed \d+s ago and another run may take it after 10s .*; stopped before the next change/);
    assert.ok(backAt > 0);
    const n = await node('kind-worker3');
    assert.equal(n.spec.unschedulable, true, 'still cordoned');
    assert.equal(n.metadata.annotations?.['cilium-migrate.io/phase'], 'drain');
    assert.deepEqual((await podsOn('kind-worker3')).filter((p) => p.metadata.name.startsWith('nginx-')).map((p) => p.metadata.uid).sort(), held, 'the stopped run evicted nothing after losing the lock');
    const resumed = await runPlugin(base('kind-worker3'), { env: env() });
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stderr, /resuming at drain/);
    await assertMigrated('kind-worker3');
  });

  it('keeps a node cordoned that its admin cordoned between a stopped run and its resume', async () => {
    await reset('kind-worker3');
    // The first run records its cordon intent and stops (a crash, a SIGKILL) before cordoning.
    const killed = await runPlugin(base('kind-worker3'), { env: { ...env(), CILIUM_MIGRATE_TEST_KILL_AT: 'kind-worker3/cordon:intent' } });
    assert.equal(killed.signal, 'SIGKILL', killed.stderr);
    assert.notEqual((await node('kind-worker3')).spec.unschedulable, true, 'not cordoned by the run');
    await cp.kubectl(['cordon', 'kind-worker3']);
    const resumed = await runPlugin(base('kind-worker3'), { env: env() });
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stderr, /cordon: already cordoned by someone else; it stays cordoned after the migration/);
    const n = await node('kind-worker3');
    assert.equal(n.spec.unschedulable, true, 'the admin\'s cordon stays');
    assert.equal(n.metadata.annotations?.['cilium-migrate.io/phase'], 'migrated');
  });

  describe('refuses bad input with one line, a distinct exit code, and no change', () => {
    const snapshot = async () => JSON.stringify((await cp.get<{ items: Node[] }>('/api/v1/nodes')).items.map((n) => [n.metadata.name, n.metadata.labels, n.metadata.annotations, n.spec.unschedulable]));

    it('an unknown node: exit 5', async () => {
      const before = await snapshot();
      const r = await runPlugin(base('no-such-node'), { env: env() });
      assert.equal(r.code, ExitCode.notFound);
      assert.match(r.stderr, /^error: node "no-such-node" does not exist\n/);
      assert.equal(await snapshot(), before);
    });

    it('no CiliumNodeConfig selecting the label: exit 6', async () => {
      await reset('kind-worker3');
      await cp.kubectl(['-n', 'kube-system', 'delete', 'ciliumnodeconfig', 'cilium-default']);
      try {
        const before = await snapshot();
        const r = await runPlugin(base('kind-worker3'), { env: env() });
        assert.equal(r.code, ExitCode.precondition);
        assert.match(r.stderr, /^error: no CiliumNodeConfig in kube-system selects nodes labelled io.cilium.migration\/cilium-default=true/);
        assert.equal(await snapshot(), before);
      } finally {
        await cp.kubectl(['apply', '--server-side', '-f', join(repoRoot, 'manifests', 'ciliumnodeconfig.yaml')]);
      }
    });

    it('an unreachable cluster: exit 4', async () => {
      const port = await freePort();
      const r = await runPlugin(['node', 'kind-worker3', '--restart', 'none', '--kubeconfig', unreachableKubeconfig(cp, port)], { env: env() });
      assert.equal(r.code, ExitCode.unreachable, r.stderr);
      assert.match(r.stderr, /cannot reach the API server/);
    });

    it('--restart reboot without --yes: exit 2', async () => {
      const r = await runPlugin(['node', 'kind-worker3', '--kubeconfig', cp.kubeconfig, '--restart', 'reboot'], { env: env() });
      assert.equal(r.code, ExitCode.usage);
      assert.match(r.stderr, /^error: --restart reboot \(it reboots the host through a privileged pod\) needs --yes to confirm\n$/);
    });

    it('a non-kind node without --restart: exit 2 naming the choices', async () => {
      const r = await runPlugin(['node', 'kind-worker3', '--kubeconfig', cp.kubeconfig], { env: env() });
      assert.equal(r.code, ExitCode.usage);
      assert.match(r.stderr, /is not a kind node .* cannot guess how to restart it\nhint: choose --restart reboot/);
    });
  });
});

function unreachableKubeconfig(cp: ControlPlane, port: number): string {
  const file = join(cp.rootDir, 'unreachable.kubeconfig');
  writeFileSync(file, `apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "https://127.0.0.1:${port}", insecure-skip-tls-verify: true}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n`);
  return file;
}

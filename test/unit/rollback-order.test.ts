// The rollback's order against an agent that behaves as Cilium's does since 1.14 (REFERENCE.md
// section 1): an agent started while its node carried the migration label applies the node config
// (cni-exclusive, write-cni-conf-when-ready), watches /etc/cni/net.d and renames restored files
// back at once. The CNI files are restored after the agent restart, and a rollback recorded in the
// earlier order (restore first) restores them again after it. On the in-memory fake of the engine's
// own interfaces, with the host's CNI config as one more fact of the fake.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { HostCommandPod } from '../../cmd/cluster/cluster.js';
import { defaultDrainFlags } from '../../cmd/cluster/drain-filter.js';
import { defaultDrainOptions } from '../../cmd/engine/drain.js';
import type { NodeRestarter } from '../../cmd/engine/restart.js';
import { runNodeProcedure } from '../../cmd/engine/node-procedure.js';
import { rollbackNode, rollbackProcedure, type RollbackOptions } from '../../cmd/engine/rollback-node.js';
import { GateError } from '../../lib/connectivity-gate.js';
import { phaseAnnotation, readRollback, rollbackAnnotation, rollbackPhase, stateAnnotation } from '../../lib/node-state.js';
import { ciliumNamespace, FakeEngineCluster, fakeRestarter, instantClock } from '../harness/fake-engine-cluster.js';

const label = 'io.cilium.migration/cilium-default';
const legacyIp = '10.244.1.9';
const ciliumIp = '10.245.1.9';

/**
 * A migrated node w1 whose host CNI config the fake keeps: `cilium` (05-cilium.conflist first,
 * Flannel's renamed to *.cilium_bak) or `legacy`. The rollback's host pod restores it, and an agent
 * that applies the node config undoes that at once; a new pod gets its address from the config.
 */
class CiliumHost extends FakeEngineCluster {
  cni: 'cilium' | 'legacy' = 'cilium';
  /** Agent pods (by UID) and whether each applies the node config: set when it starts, from the node's label. */
  private readonly agents = new Map<string, boolean>();

  constructor() {
    super();
    const n = this.node('w1');
    n.labels[label] = 'true';
    n.annotations[stateAnnotation] = JSON.stringify({ v: 1, startedBy: 'm', lastRun: 'm', startedAt: 't', wasUnschedulable: false, cordonedByUs: true, bootID: 'boot-0', steps: {}, migratedAt: 't' });
    n.annotations[phaseAnnotation] = 'migrated';
    this.addWorkload('w1', 'web-1');
    for (const p of this.agentPods()) this.agents.set(p.uid, true);
  }

  private agentPods() {
    return this.pods.filter((p) => p.nodeName === 'w1' && p.labels['k8s-app'] === 'cilium');
  }

  /** Whether the agent running now applies the node config. */
  agentAppliesNodeConfig(): boolean {
    return this.agentPods().some((p) => this.agents.get(p.uid));
  }

  override async deletePodByUid(namespace: string, name: string, uid: string): Promise<void> {
    await super.deletePodByUid(namespace, name, uid);
    // The DaemonSet's new agent reads the node config at its start: only with the label.
    for (const p of this.agentPods()) if (!this.agents.has(p.uid)) this.agents.set(p.uid, this.node('w1').labels[label] === 'true');
  }

  override async createHostCommandPod(pod: HostCommandPod): Promise<'created' | 'exists'> {
    const created = await super.createHostCommandPod(pod);
    if (created === 'created' && pod.purpose === 'rollback') {
      this.cni = 'legacy';
      if (this.agentAppliesNodeConfig()) {
        this.cni = 'cilium';
        this.log.push('agent renamed the restored config back to *.cilium_bak');
      }
    }
    return created;
  }

  override async createProbePod(namespace: string, name: string, node: string): Promise<void> {
    this.newPodIp = this.cni === 'legacy' ? legacyIp : ciliumIp;
    await super.createProbePod(namespace, name, node);
  }
}

function options(restarter: NodeRestarter, runId = 'rb-1'): RollbackOptions {
  return {
    runId, labelKey: label, ciliumNamespace, restarter, hostImage: 'alpine', verifyNamespace: 'default', verifyImage: 'pause',
    drain: { ...defaultDrainFlags, ...defaultDrainOptions, timeoutMs: 60_000 },
    timeoutsMs: { hostCommand: 60_000, agentRestart: 60_000, nodeRestart: 60_000, verify: 60_000 }, pollMs: 1000,
  };
}

const quiet = { line: () => {}, status: () => {} };

/** A rollback stopped by the earlier plugin after `done` (in its order: unlabel, restore-cni, restart-agent, ...), with what its agent did meanwhile. */
function stoppedInEarlierOrder(c: CiliumHost, steps: Record<string, object>) {
  const n = c.node('w1');
  delete n.labels[label];
  n.unschedulable = true;
  n.annotations[rollbackAnnotation] = JSON.stringify({ v: 1, startedBy: 'rb-old', lastRun: 'rb-old', startedAt: '2026-11-20T10:00:00.000Z', wasUnschedulable: false, cordonedByUs: true, steps });
  // Its restore ran while the agent with the node config ran: undone at once.
  c.cni = 'cilium';
}

const done = { intent: '2026-11-20T10:00:00.000Z', done: '2026-11-20T10:00:01.000Z' };

describe('rollback against an agent that renames restored CNI files back (Cilium 1.14 and later)', () => {
  it('restarts the agent, waits for the new one, then restores the files: a new pod gets a legacy address', async () => {
    const c = new CiliumHost();
    const r = await rollbackNode(c, 'w1', options(fakeRestarter(c).restarter), instantClock(), quiet);
    assert.deepEqual(r.steps.map((s) => s.step), ['cordon', 'drain', 'unlabel', 'restart-agent', 'restore-cni', 'restart-node', 'verify', 'uncordon']);
    assert.equal(c.cni, 'legacy');
    assert.match(r.steps.find((s) => s.step === 'verify')!.message, /a new pod got 10\.244\.1\.9/);
    const order = c.log.filter((l) => /^(label w1|delete kube-system\/cilium-w1$|create kube-system\/cilium-migrate-rollback-|restart w1|agent renamed)/.test(l));
    assert.deepEqual(order.map((l) => l.replace(/-[0-9a-f]{12}$/, '')), [`label w1 ${label}=null`, 'delete kube-system/cilium-w1', 'create kube-system/cilium-migrate-rollback', 'restart w1']);
  });

  it('the earlier order (restore, then the agent restart) fails there: the verify pod gets a Cilium address', async () => {
    const c = new CiliumHost();
    const procedure = rollbackProcedure(options(fakeRestarter(c).restarter));
    const earlier = ['cordon', 'drain', 'unlabel', 'restore-cni', 'restart-agent', 'restart-node', 'verify', 'uncordon'].map((n) => procedure.steps.find((s) => s.name === n)!);
    const env = { cluster: c, opts: options(fakeRestarter(c).restarter), clock: instantClock(), report: quiet };
    await assert.rejects(runNodeProcedure({ ...procedure, steps: earlier }, env, 'w1', await c.getNode('w1')), (err: unknown) => err instanceof GateError && /got 10\.245\.1\.9, inside its Cilium pod CIDRs/.test(err.message));
    assert.ok(c.log.includes('agent renamed the restored config back to *.cilium_bak'));
  });

  it('a rollback the earlier order stopped after its restore (agent not restarted) restores again after the agent restart', async () => {
    const c = new CiliumHost();
    stoppedInEarlierOrder(c, { cordon: done, drain: done, unlabel: done, 'restore-cni': done, 'restart-agent': { intent: '2026-11-20T10:00:01.000Z' } });
    assert.equal(rollbackPhase(readRollback(c.node('w1').annotations)!), 'rollback-restart-agent');
    const lines: string[] = [];
    const { restarter, requests } = fakeRestarter(c);
    const r = await rollbackNode(c, 'w1', options(restarter, 'rb-new'), instantClock(), { line: (_n, l) => lines.push(l), status: () => {} });
    assert.deepEqual(r.steps.filter((s) => s.outcome === 'done-before').map((s) => s.step), ['cordon', 'drain', 'unlabel']);
    assert.match(r.steps.find((s) => s.step === 'restore-cni')!.message, /again: its earlier run restored the files before the agent restart/);
    assert.equal(c.cni, 'legacy');
    assert.equal(requests.length, 1);
    assert.match(requests[0]!.id, /^rb-old@/, 'the request is named by the run that started the rollback');
    assert.ok(lines.some((l) => /^resuming at rollback-restart-agent \(started by run rb-old/.test(l)), lines.join('\n'));
    assert.equal(c.node('w1').unschedulable, false);
    assert.deepEqual(Object.keys(c.node('w1').annotations).filter((k) => k.startsWith('cilium-migrate.io/')), []);
  });

  it('one the earlier order stopped after its agent restart, its node restart requested, restores again and restarts the node again', async () => {
    const c = new CiliumHost();
    const agent = c.pods.find((p) => p.name === 'cilium-w1')!;
    stoppedInEarlierOrder(c, {
      cordon: done, drain: done, unlabel: done, 'restore-cni': done,
      'restart-agent': { ...done, data: { oldUids: [agent.uid] } },
      'restart-node': { intent: '2026-11-20T10:00:02.000Z', data: { baseline: { requestedAt: '2026-11-20T10:00:02.000Z', bootID: 'boot-1', daemonSetPods: {} }, requested: '2026-11-20T10:00:03.000Z' } },
    });
    // The earlier run restarted the agent (the new one has no node config) after its undone restore.
    await c.deletePodByUid(agent.namespace, agent.name, agent.uid);
    c.node('w1').bootID = 'boot-after-earlier-restart'; // that restart happened, on Cilium's config
    c.log = [];
    const { restarter, requests } = fakeRestarter(c);
    const r = await rollbackNode(c, 'w1', options(restarter, 'rb-new'), instantClock(), quiet);
    assert.deepEqual(r.steps.filter((s) => s.outcome === 'done-before').map((s) => s.step), ['cordon', 'drain', 'unlabel', 'restart-agent']);
    assert.equal(c.log.filter((l) => l.startsWith('delete kube-system/cilium-w1')).length, 0, 'the agent is not restarted twice');
    assert.equal(requests.length, 1, 'the node is restarted after the restore');
    assert.equal(c.cni, 'legacy');
    assert.match(r.steps.find((s) => s.step === 'verify')!.message, /a new pod got 10\.244\.1\.9/);
  });

  it('one whose verify passed is trusted: nothing is restored or restarted again', async () => {
    const c = new CiliumHost();
    stoppedInEarlierOrder(c, { cordon: done, drain: done, unlabel: done, 'restore-cni': done, 'restart-agent': done, 'restart-node': done, verify: done });
    c.cni = 'legacy';
    c.log = [];
    const { restarter, requests } = fakeRestarter(c);
    const r = await rollbackNode(c, 'w1', options(restarter, 'rb-new'), instantClock(), quiet);
    assert.deepEqual(r.steps.filter((s) => s.outcome === 'done-before').map((s) => s.step), ['cordon', 'drain', 'unlabel', 'restart-agent', 'restore-cni', 'restart-node', 'verify']);
    assert.equal(requests.length, 0);
    assert.deepEqual(c.log, ['patch w1 unschedulable=false']);
  });

  it('a restore recorded by this order counts as done; the dry run of an earlier-order record says it restores again', async () => {
    const c = new CiliumHost();
    stoppedInEarlierOrder(c, { cordon: done, drain: done, unlabel: done, 'restart-agent': done, 'restore-cni': { ...done, data: { afterAgentRestart: true } } });
    assert.equal(rollbackPhase(readRollback(c.node('w1').annotations)!), 'rollback-restart-node');

    stoppedInEarlierOrder(c, { cordon: done, drain: done, unlabel: done, 'restore-cni': done, 'restart-agent': done });
    assert.equal(rollbackPhase(readRollback(c.node('w1').annotations)!), 'rollback-restore-cni');
    const r = await rollbackNode(c, 'w1', { ...options(fakeRestarter(c).restarter), dryRun: true }, instantClock(), quiet);
    assert.deepEqual(r.steps.filter((s) => s.outcome === 'done-before').map((s) => s.step), ['cordon', 'drain', 'unlabel', 'restart-agent']);
    assert.match(r.steps.find((s) => s.step === 'restore-cni')!.message, /^run a privileged pod of alpine on w1 .*; again: its earlier run restored the files before the agent restart$/);
  });
});

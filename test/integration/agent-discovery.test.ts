// The agent's discovery against a real API server: agents appear and disappear with their pods,
// nodes and CiliumNodes are followed, the watch survives an API server restart, and nothing is
// listed periodically.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ClusterView } from '../../agent/discovery.js';
import { agentSelector } from '../../agent/config.js';
import { kubeDiscovery } from '../../agent/kube-discovery.js';
import { liteCredentials, liteKube } from '../../lib/kube-lite.js';
import { createSimulatedNodes, installCiliumCrds, kindNodes } from '../../lab/cluster-objects.js';
import { startControlPlane, type ControlPlane } from '../../lab/control-plane.js';
import { progress } from '../harness/shared-cluster.js';
import { eventually } from '../harness/wait.js';

const ns = 'cilium-migrate';
const agentPod = (name: string, node: string) =>
  JSON.stringify({
    apiVersion: 'v1', kind: 'Pod',
    metadata: { name, namespace: ns, labels: { 'app.kubernetes.io/name': 'cilium-migrate-agent' } },
    spec: { nodeName: node, tolerations: [{ operator: 'Exists' }], containers: [{ name: 'agent', image: 'cilium-migrate-agent' }] },
  });

/** LIST requests the API server has served for `resource`, from its own metrics. */
async function listCount(cp: ControlPlane, resource: string): Promise<number> {
  const { stdout } = await cp.kubectl(['get', '--raw', '/metrics']);
  return stdout
    .split('\n')
    .filter((l) => l.startsWith('apiserver_request_total{') && l.includes('verb="LIST"') && l.includes(`resource="${resource}"`))
    .reduce((sum, l) => sum + Number(l.split(' ').at(-1)), 0);
}

describe('agent discovery by watch', () => {
  let cp: ControlPlane;
  let latest: ClusterView | undefined;
  const views: ClusterView[] = [];
  const logs: string[] = [];
  let stop: () => void = () => {};

  before(async () => {
    cp = await startControlPlane({ progress });
    await installCiliumCrds(cp);
    await createSimulatedNodes(cp, kindNodes(2));
    await cp.kubectl(['create', 'namespace', ns]);
    for (const [pod, node] of [['agent-cp', 'kind-control-plane'], ['agent-w1', 'kind-worker'], ['agent-w2', 'kind-worker2']]) {
      await cp.kubectl(['apply', '-f', '-'], { input: agentPod(pod!, node!) });
    }
    const discovery = kubeDiscovery(liteKube(liteCredentials(cp.kubeconfig)), ns, agentSelector, 'cilium-migrate.io/phase', (l) => logs.push(l));
    discovery.start((v) => {
      latest = v;
      views.push(v);
    });
    stop = () => discovery.stop();
  });
  after(async () => {
    stop();
    await cp?.stop();
  });

  const agents = () => (latest?.agents ?? []).map((a) => a.pod).sort();

  it('sees every running agent pod with its node and IP', async () => {
    await eventually('three agents', async () => (agents().length === 3 ? true : undefined));
    const w1 = latest!.agents.find((a) => a.pod === 'agent-w1')!;
    assert.equal(w1.node, 'kind-worker');
    assert.match(w1.ip, /^10\.244\./);
    assert.deepEqual(latest!.nodes.map((n) => n.name).sort(), ['kind-control-plane', 'kind-worker', 'kind-worker2']);
    // Nodes come as metadata only; a node's address is its agent pod's hostIP (as its kubelet
    // reports it; kwok's nodes have no address, so the test sets one).
    await cp.kubectl(['-n', ns, 'patch', 'pod', 'agent-w1', '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { hostIP: '172.18.0.3', hostIPs: [{ ip: '172.18.0.3' }] } })]);
    await eventually('the node address from the agent pod', async () => (latest?.nodes.find((n) => n.name === 'kind-worker')?.addresses.includes('172.18.0.3') ? true : undefined));
  });

  it('drops an agent whose pod is deleted, and adds a new one', async () => {
    await cp.kubectl(['-n', ns, 'delete', 'pod', 'agent-w2', '--wait=false']);
    await eventually('agent-w2 gone', async () => (!agents().includes('agent-w2') ? true : undefined));
    await cp.kubectl(['apply', '-f', '-'], { input: agentPod('agent-w2b', 'kind-worker2') });
    await eventually('agent-w2b there', async () => (agents().includes('agent-w2b') ? true : undefined));
  });

  it('follows node labels and phases, and CiliumNode pod CIDRs', async () => {
    await cp.kubectl(['label', 'node', 'kind-worker', 'io.cilium.migration/cilium-default=true']);
    await cp.kubectl(['annotate', 'node', 'kind-worker', 'cilium-migrate.io/phase=drain']);
    await cp.kubectl(['apply', '--server-side', '-f', '-'], { input: JSON.stringify({ apiVersion: 'cilium.io/v2', kind: 'CiliumNode', metadata: { name: 'kind-worker' }, spec: { ipam: { podCIDRs: ['10.245.1.0/24'] } } }) });
    await eventually('labels, phase and CIDRs seen', async () => {
      const n = latest?.nodes.find((x) => x.name === 'kind-worker');
      return n?.labels['io.cilium.migration/cilium-default'] === 'true' && n.phase === 'drain' && latest?.ciliumNodeCidrs['kind-worker']?.[0] === '10.245.1.0/24' ? true : undefined;
    });
  });

  it('keeps its watches open while nothing changes (Node\'s global agent cut every connection quiet for 5 s)', async () => {
    const logged = logs.length;
    // Nothing the agent watches changes for 8 s: no agent pod, no node label or phase, no CiliumNode.
    await new Promise((r) => setTimeout(r, 8000));
    assert.deepEqual(logs.slice(logged).filter((l) => /broke/.test(l)), [], 'no watch broke');
    await cp.kubectl(['label', 'node', 'kind-worker2', 'quiet-test=seen']);
    await eventually('a change after the quiet time', async () => (latest?.nodes.find((n) => n.name === 'kind-worker2')?.labels['quiet-test'] === 'seen' ? true : undefined), 5_000);
  });

  it('keeps the last view through an API server restart and resumes watching after it', async () => {
    const before = views.length;
    await cp.restartApiserver(2000);
    assert.ok(views.slice(before).every((v) => v.agents.length === 3), 'no view lost its agents during the outage');
    assert.deepEqual(agents(), ['agent-cp', 'agent-w1', 'agent-w2b']);
    await cp.kubectl(['apply', '-f', '-'], { input: agentPod('agent-after-restart', 'kind-worker') });
    await eventually('an agent created after the restart', async () => (agents().includes('agent-after-restart') ? true : undefined), 60_000);
  });

  it('does not LIST periodically', async () => {
    // After the API server restart above, every client (the controller manager, kwok, the agent)
    // may relist once as its watches resume; wait until that is over, then watch for 6 s more.
    let last = '';
    let stableSince = Date.now();
    for (const deadline = Date.now() + 60_000; Date.now() < deadline && Date.now() - stableSince < 4000; await new Promise((r) => setTimeout(r, 500))) {
      const now = `${await listCount(cp, 'pods')}/${await listCount(cp, 'nodes')}`;
      if (now !== last) [last, stableSince] = [now, Date.now()];
    }
    const pods = await listCount(cp, 'pods');
    const nodes = await listCount(cp, 'nodes');
    await new Promise((r) => setTimeout(r, 6000));
    await cp.kubectl(['-n', ns, 'delete', 'pod', 'agent-after-restart', '--wait=false']);
    await eventually('the deletion seen', async () => (!agents().includes('agent-after-restart') ? true : undefined));
    assert.equal(await listCount(cp, 'pods'), pods, 'no pod LIST while watching');
    assert.equal(await listCount(cp, 'nodes'), nodes, 'no node LIST while watching');
  });
});

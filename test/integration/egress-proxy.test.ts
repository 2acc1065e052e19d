// The API server on the host's loopback reaches pods that live in lab network namespaces only
// through the egress proxy (its "cluster" egress over a Unix socket), never by a host route.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startControlPlane, type ControlPlane } from '../../lab/control-plane.js';
import { createTopology, type NetnsPod, type Topology } from '../../lab/netns.js';
import type { ManagedProcess } from '../../lab/process.js';
import { repoRoot } from '../harness/plugin.js';
import { eventually } from '../harness/wait.js';

const egressProxyJs = join(repoRoot, 'dist', 'lab', 'egress-proxy.js');

describe('API server egress into the lab through the egress proxy', () => {
  let topo: Topology;
  let cp: ControlPlane;
  let dir: string;
  let pod: NetnsPod;
  let proxy: ManagedProcess;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'egress-test-'));
    topo = await createTopology(2);
    cp = await startControlPlane({ clusterEgressSocket: join(dir, 'egress.sock'), kwok: false });
    pod = await topo.addPod(1, 'cilium', 'web');
    topo.spawn(pod.netns, [process.execPath, '-e', "require('http').createServer((q,r)=>r.end('pod says '+q.url)).listen(8080)"]);
    await cp.kubectl(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'lab-n1' } }) });
    await cp.kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web', namespace: 'default' }, spec: { nodeName: 'lab-n1', containers: [{ name: 'web', image: 'lab/http' }] } }),
    });
    await cp.kubectl(['patch', 'pod', 'web', '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { phase: 'Running', podIP: pod.ip, podIPs: [{ ip: pod.ip }] } })]);
  });

  after(async () => {
    await cp?.stop();
    await topo?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('refuses to reach the pod while no proxy listens (no route from the host is used)', async () => {
    await assert.rejects(cp.kubectl(['get', '--raw', '/api/v1/namespaces/default/pods/web:8080/proxy/hello'], { timeoutMs: 20_000 }));
  });

  it('proxies a request to a pod IP inside a lab namespace once the proxy runs in the node namespace', async () => {
    // The proxy sits in the other node's namespace: the request crosses the Cilium VXLAN overlay.
    proxy = topo.spawn(topo.nodes[0]!.netns, [process.execPath, egressProxyJs, '--socket', join(dir, 'egress.sock')]);
    const out = await eventually('the pod through the API server', async () => (await cp.kubectl(['get', '--raw', '/api/v1/namespaces/default/pods/web:8080/proxy/hello'])).stdout, 20_000);
    assert.equal(out, 'pod says /hello');
    assert.ok(proxy.running());
  });
});

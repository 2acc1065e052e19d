// The lab data plane is real: pods in network namespaces reach each other over two VXLAN overlays,
// a UDP drop on one node cuts exactly the paths through it, and nothing outlives the topology or
// touches the host's own namespace.
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createTopology, netnsOverlays, netnsUnsupportedReason, reapStaleTopologies, type NetnsPod, type Topology } from '../../lab/netns.js';
import { pidAlive } from '../../lab/process.js';
import { eventually } from '../harness/wait.js';

const netnsModule = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'lab', 'netns.ts');
// The data-plane tests need root, iproute2, iptables and ping (make system-deps installs them); a
// machine without them fails here with the reason rather than skipping silently.
const unsupported = netnsUnsupportedReason() ?? (spawnSync('ping', ['-V']).status === 0 ? undefined : 'ping is missing (apt-get install iputils-ping)');

it('runs where network namespaces, iptables and ping work', () => {
  assert.equal(unsupported, undefined, unsupported);
});

/** What the host's own namespace has; the lab must leave it exactly as it was. */
function rootNamespaceState(): { links: string[]; routes: string } {
  const links = execFileSync('ip', ['-o', 'link'], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => l.split(':').slice(0, 2).join(':'));
  return { links, routes: execFileSync('ip', ['route', 'show', 'table', 'all'], { encoding: 'utf8' }) };
}

function namespacesStartingWith(prefix: string): string[] {
  return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => n.startsWith(`${prefix}-`));
}

/** "from->to" for every ordered pair of distinct pods, true when one ping got its answer. */
async function reachability(topo: Topology, pods: NetnsPod[]): Promise<Record<string, boolean>> {
  const pairs = pods.flatMap((from) => pods.filter((to) => to !== from).map((to) => [from, to] as const));
  const results = await Promise.all(
    pairs.map(async ([from, to]) => {
      const r = await topo.exec(from.netns, ['ping', '-n', '-q', '-c', '1', '-W', '1', to.ip], { timeoutMs: 5_000 });
      return [`${from.name}->${to.name}`, r.code === 0] as const;
    }),
  );
  return Object.fromEntries(results);
}

function expectAll(pods: NetnsPod[], reachable: (from: NetnsPod, to: NetnsPod) => boolean): Record<string, boolean> {
  return Object.fromEntries(pods.flatMap((from) => pods.filter((to) => to !== from).map((to) => [`${from.name}->${to.name}`, reachable(from, to)])));
}

describe('network namespace data plane', () => {
  let rootBefore: ReturnType<typeof rootNamespaceState>;
  let topo: Topology;
  let pods: NetnsPod[];
  let ciliumOnNode2: NetnsPod;

  before(async () => {
    rootBefore = rootNamespaceState();
    topo = await createTopology(4);
    pods = [
      await topo.addPod(0, 'legacy', 'legacy-n0'),
      await topo.addPod(1, 'legacy', 'legacy-n1'),
      await topo.addPod(2, 'cilium', 'cilium-n2'),
      await topo.addPod(3, 'cilium', 'cilium-n3'),
      await topo.addPod(0, 'cilium', 'cilium-n0'),
    ];
    ciliumOnNode2 = pods[2]!;
  });

  after(() => topo?.destroy());

  it('addresses pods from their node and overlay CIDR', () => {
    assert.deepEqual(
      pods.map((p) => `${p.name} ${p.ip}`),
      ['legacy-n0 10.244.0.10', 'legacy-n1 10.244.1.10', 'cilium-n2 10.245.2.10', 'cilium-n3 10.245.3.10', 'cilium-n0 10.245.0.10'],
    );
  });

  it('gives the underlay and the nodes no route out of the lab', async () => {
    for (const ns of [topo.underlayNetns, ...topo.nodes.map((n) => n.netns)]) {
      const r = await topo.exec(ns, ['ip', 'route', 'get', '192.0.2.1']);
      assert.notEqual(r.code, 0, `${ns} has no route to an outside address (${r.stdout.trim()})`);
    }
  });

  it('every pod reaches every other pod, on the same node and across nodes, within and across overlays', async () => {
    assert.deepEqual(await reachability(topo, pods), expectAll(pods, () => true));
  });

  it(`dropping UDP ${netnsOverlays.cilium.udpPort} on node 2 cuts exactly the pairs involving its cilium pod`, async () => {
    await topo.dropUdpPort(2, netnsOverlays.cilium.udpPort);
    await topo.dropUdpPort(2, netnsOverlays.cilium.udpPort); // a second drop is harmless
    // A request to it arrives over cilium_vxlan; the reply to its own requests does too.
    assert.deepEqual(await reachability(topo, pods), expectAll(pods, (from, to) => from !== ciliumOnNode2 && to !== ciliumOnNode2));
  });

  it('restoring the port brings every pair back', async () => {
    await topo.restoreUdpPort(2, netnsOverlays.cilium.udpPort);
    const rules = await topo.exec(topo.nodes[2]!.netns, ['iptables', '-S', 'INPUT']);
    assert.doesNotMatch(rules.stdout, /DROP/, 'no drop rule is left');
    assert.deepEqual(await reachability(topo, pods), expectAll(pods, () => true));
  });

  it('sets the MTU of a node device', async () => {
    await topo.setMtu(1, 'cilium_vxlan', 1400);
    const r = await topo.exec(topo.nodes[1]!.netns, ['ip', '-o', 'link', 'show', 'dev', 'cilium_vxlan']);
    assert.match(r.stdout, / mtu 1400 /);
  });

  it('runs a spawned process inside the namespace it was given', async () => {
    const pod = pods[1]!;
    const proc = topo.spawn(pod.netns, ['sleep', '300']);
    const identified = await eventually('the process to enter its namespace', async () => {
      const out = spawnSync('ip', ['netns', 'identify', String(proc.pid)], { encoding: 'utf8' }).stdout.trim();
      return out === '' ? undefined : out;
    }, 5_000, 20);
    assert.equal(identified, pod.netns);
    assert.throws(() => topo.spawn('some-other-netns', ['true']), /not a namespace of topology/);
  });

  it('destroy() stops its processes, deletes every namespace and leaves the root namespace as it was', async () => {
    const proc = topo.spawn(pods[0]!.netns, ['sleep', '300']);
    await topo.destroy();
    await topo.destroy(); // a second destroy is harmless
    assert.equal(proc.running(), false, 'the spawned process is stopped');
    assert.deepEqual(namespacesStartingWith(topo.prefix), []);
    assert.deepEqual(rootNamespaceState(), rootBefore);
    await assert.rejects(topo.addPod(0, 'legacy', 'late'), /destroyed/);
  });
});

interface Held {
  prefix: string;
  pid: number;
}

// A topology with one pod running `sleep`, held by a child process until it is signalled.
async function holdInChild(): Promise<{ held: Held; child: ReturnType<typeof spawn>; exited: Promise<void> }> {
  const script = `
    const { createTopology } = await import(${JSON.stringify(netnsModule)});
    const topo = await createTopology(2);
    const pod = await topo.addPod(1, 'cilium', 'held');
    const proc = topo.spawn(pod.netns, ['sleep', '300']);
    console.log(JSON.stringify({ prefix: topo.prefix, pid: proc.pid }));
    setInterval(() => {}, 60_000);
  `;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`the child holding a topology exited early (${code})`)));
  });
  return { held: JSON.parse(line) as Held, child, exited };
}

describe('network namespace cleanup', () => {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    it(`deletes every namespace when the owning process gets ${signal}`, async () => {
      const rootBefore = rootNamespaceState();
      const { held, child, exited } = await holdInChild();
      assert.equal(namespacesStartingWith(held.prefix).length, 4, 'underlay, two nodes and a pod exist');
      child.kill(signal);
      await exited;
      assert.deepEqual(namespacesStartingWith(held.prefix), []);
      await eventually('the spawned process to die', async () => (pidAlive(held.pid) ? undefined : true), 5_000, 20);
      assert.deepEqual(rootNamespaceState(), rootBefore);
    });
  }

  it("after SIGKILL of its owner, the next run reaps the namespaces (and only that owner's)", async () => {
    const { held: kept, child: keeper, exited: keeperExited } = await holdInChild();
    const { held, child, exited } = await holdInChild();
    child.kill('SIGKILL');
    await exited;
    assert.equal(namespacesStartingWith(held.prefix).length, 4, 'a SIGKILLed owner cannot delete its namespaces itself');
    await eventually('the spawned process to die with its owner', async () => (pidAlive(held.pid) ? undefined : true), 5_000, 20);
    const logDirs = () => readdirSync(tmpdir()).filter((d) => d.startsWith(`${held.prefix}-logs-`));
    assert.equal(logDirs().length, 1, 'its log directory is left behind by the SIGKILL');
    reapStaleTopologies();
    assert.deepEqual(namespacesStartingWith(held.prefix), [], 'the stale namespaces are reaped');
    assert.deepEqual(logDirs(), [], 'and its log directory');
    assert.equal(namespacesStartingWith(kept.prefix).length, 4, 'a live owner keeps its namespaces');
    keeper.kill('SIGTERM');
    await keeperExited;
    assert.deepEqual(namespacesStartingWith(kept.prefix), []);
  });
});

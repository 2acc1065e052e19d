// End to end on the real-node lab: the seed's migration with the real plugin (bundled, as users run
// it) on a real control plane, real kubelets and containerd, Flannel from its manifest and real
// Cilium from its chart through helm, the probe agents as the DaemonSet, while a traffic checker on
// every node keeps requesting every nginx pod: `node` with the default --restart kind (the lab's
// docker on PATH), --restart reboot for the control plane, a broken Cilium overlay stopping the
// gate, and `finalize --apply` through the real helm upgrade. Then the lab goes down and must leave
// nothing behind.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cidrContains } from '../../lib/cidr.js';
import { ciliumClusterCidr, legacyClusterCidr } from '../../lib/defaults.js';
import { reflect, type KubeObject, type Reflector } from '../../lib/kube-watch.js';
import { labDown, labUdpPort, labUp } from '../../lab/cli.js';
import { labHostCommandImage } from '../../lab/images/catalog.js';
import { kindPaths } from '../../lab/kind-lab.js';
import { trafficResultsHostPath } from '../../lab/lab-install.js';
import { pidsMentioning } from '../../lab/control-plane.js';
import { statePaths, type LabStatus } from '../../lab/daemon.js';
import { ciliumStatusSettled, finalizeStep, labNodeFlags, prepareStep, seedOrder } from '../../lab/demo.js';
import { api } from '../../lab/lab-api.js';
import { deployWorkloads, flannelInstalled, migratedNodes, podsPerOverlay, scenario, type Scenario } from '../../lab/scenario.js';
import { waitUntil } from '../../lab/wait.js';
import type { TrafficRecord } from '../../lab/programs/traffic-checker.js';
import { repoRoot } from '../harness/plugin.js';

const distDir = join(repoRoot, 'dist');
const labJs = join(distDir, 'lab.js');

const netnsNames = () => execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').map((l) => l.split(' ')[0]!).filter(Boolean);
const rootLinks = () => execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).split('\n').map((l) => l.split(':')[1]?.trim() ?? '').filter(Boolean).sort();
const netnsMounts = () => readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes('/run/netns/')).map((l) => l.split(' ')[4]!);

interface PodObject extends KubeObject {
  metadata?: KubeObject['metadata'] & { uid?: string; deletionTimestamp?: string; deletionGracePeriodSeconds?: number };
}

/** `docker exec NODE ARGV...` through the lab's docker: a command in the node's namespaces and root. */
const inNode = (stateDir: string, node: string, argv: string[]) => execFileSync(kindPaths(stateDir).docker, ['exec', node, ...argv], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

describe('the real-node lab: the seed migration end to end with the plugin', () => {
  let stateDir: string;
  let lab: LabStatus;
  let s: Scenario;
  const before0 = { netns: [] as string[], links: [] as string[], mounts: [] as string[], cpDirs: [] as string[] };
  // When the deletion of each nginx pod was asked for (drains): requests to those may fail.
  const deletionRequested = new Map<string, number>();
  let watcher: Reflector | undefined;
  const log: string[] = [];
  const progress = (line: string) => log.push(line);

  before(async () => {
    before0.netns = netnsNames();
    before0.links = rootLinks();
    before0.mounts = netnsMounts();
    before0.cpDirs = readdirSync(tmpdir()).filter((d) => d.startsWith('cilium-migrate-cp-'));
    stateDir = mkdtempSync(join(tmpdir(), 'lab-e2e-'));
    const t0 = Date.now();
    lab = await labUp({ stateDir, nodes: 3, labJs, progress });
    progress(`lab up in ${((Date.now() - t0) / 1000).toFixed(0)}s`);
    s = scenario({ kubeconfig: statePaths(stateDir).kubeconfig, distDir, stateDir });
    watcher = reflect(s.kube.lite, '/api/v1/namespaces/default/pods', {
      query: { labelSelector: 'app=nginx' },
      onChange: (items) => {
        for (const p of items.values() as Iterable<PodObject>) {
          const uid = p.metadata?.uid;
          if (!uid || !p.metadata?.deletionTimestamp || deletionRequested.has(uid)) continue;
          // deletionTimestamp is the end of the grace period, in whole seconds.
          deletionRequested.set(uid, Date.parse(p.metadata.deletionTimestamp) - (p.metadata.deletionGracePeriodSeconds ?? 0) * 1000);
        }
      },
    });
    await deployWorkloads(s, { trafficChecker: true });
    await waitUntil('a traffic checker Ready on every node', async () => {
      const ds = await api<{ status: { numberReady?: number } }>(s.kube, 'GET', '/apis/apps/v1/namespaces/default/daemonsets/traffic-checker');
      return ds.status.numberReady === 3 ? true : undefined;
    }, 120_000);
  });

  after(async () => {
    watcher?.stop();
    // Normally the last test has done this already; here for a run that failed half way.
    if (stateDir && existsSync(stateDir)) await labDown({ stateDir, progress });
  });

  it('registers kind\'s nodes Ready, with roles, the control-plane taint, pod CIDRs, bootIDs and Leases', async () => {
    const nodes = await api<{ items: { metadata: { name: string; labels: Record<string, string> }; spec: { podCIDR?: string; taints?: { key: string; effect: string }[] }; status: { conditions: { type: string; status: string }[]; nodeInfo: { bootID: string } } }[] }>(s.kube, 'GET', '/api/v1/nodes');
    assert.deepEqual(nodes.items.map((n) => n.metadata.name), ['kind-control-plane', 'kind-worker', 'kind-worker2']);
    nodes.items.forEach((n, i) => {
      assert.match(n.spec.podCIDR ?? '', /^10\.244\.\d+\.0\/24$/, `${n.metadata.name} has its pod CIDR from the controller manager`);
      assert.equal(n.status.conditions.find((c) => c.type === 'Ready')?.status, 'True');
      assert.match(n.status.nodeInfo.bootID, /^[0-9a-f-]{36}$/);
      assert.equal('node-role.kubernetes.io/control-plane' in n.metadata.labels, i === 0);
      assert.equal(n.spec.taints?.some((t) => t.key === 'node-role.kubernetes.io/control-plane' && t.effect === 'NoSchedule') ?? false, i === 0);
    });
    assert.equal(new Set(nodes.items.map((n) => n.spec.podCIDR)).size, 3, 'distinct pod CIDRs');
    for (const n of nodes.items) await api(s.kube, 'GET', `/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/${n.metadata.name}`);
  });

  it('contains the lab: the underlay has no route out of the lab, and every node routes only into the underlay', () => {
    const routes = execFileSync('ip', ['-n', lab.underlayNetns, 'route', 'show'], { encoding: 'utf8' });
    assert.doesNotMatch(routes, /^default/m, `${lab.underlayNetns} has no default route`);
    assert.throws(() => execFileSync('ip', ['-n', lab.underlayNetns, 'route', 'get', '1.1.1.1'], { stdio: 'pipe' }), /unreachable/i, `${lab.underlayNetns} cannot reach the outside`);
    for (const n of lab.nodes) {
      // As on kind's docker network, a node's default route is the underlay's gateway, which has none.
      const via = execFileSync('ip', ['-n', n.netns, 'route', 'get', '1.1.1.1'], { encoding: 'utf8' });
      assert.match(via, /via 172\.18\.0\.1 dev eth0/, `${n.name} reaches out only through the underlay: ${via}`);
    }
  });

  it('keeps pods\' commands off the machine\'s files: a pod writes into its own container, a host script acts on its lab node', async () => {
    const marker = `/etc/lab-escape-${Date.now()}`;
    const run = async (name: string, command: string[], extra: Record<string, unknown> = {}, privileged = false) => {
      s.kubectl(['run', '--restart=Never', name, ...(privileged ? ['--privileged'] : []), `--overrides=${JSON.stringify({ spec: { nodeName: 'kind-worker', tolerations: [{ operator: 'Exists' }], ...extra } })}`, '--image', 'alpine', '--command', '--', ...command]);
      const phase = await waitUntil(`${name} to complete`, async () => {
        const p = await api<{ status: { phase?: string } }>(s.kube, 'GET', `/api/v1/namespaces/default/pods/${name}`);
        return p.status.phase === 'Succeeded' || p.status.phase === 'Failed' ? p.status.phase : undefined;
      }, 30_000);
      s.kubectl(['delete', 'pod', name, '--wait=true']);
      return phase;
    };
    // A container's /etc is its own (an overlay of its image under the node's containerd).
    assert.equal(await run('escape', ['sh', '-c', `touch ${marker}`]), 'Succeeded');
    assert.equal(existsSync(marker), false, `${marker} was not created on the machine`);
    // What the plugin's rollback and finalize do through a privileged pod: nsenter into the host.
    assert.equal(await run('host-script', ['nsenter', '-t', '1', '-m', '-n', '--', 'sh', '-c', `touch /etc/cni/net.d/99-host-script && ip link show flannel.1`], { hostPID: true }, true), 'Succeeded');
    assert.deepEqual(inNode(stateDir, 'kind-worker', ['ls', '/etc/cni/net.d']).trim().split('\n'), ['10-flannel.conflist', '99-host-script'], 'the host script wrote into the lab node\'s CNI directory');
    assert.equal(existsSync('/etc/cni/net.d/99-host-script'), false, 'not into the machine\'s');
    inNode(stateDir, 'kind-worker', ['rm', '/etc/cni/net.d/99-host-script']);
  });

  it('migrates every node with the plugin while requests to pods not being drained never fail, with cross-overlay traffic both ways; a broken Cilium overlay stops the gate naming the tunnel port', async () => {
    const pre = await s.plugin(['preflight'], progress);
    assert.equal(pre.code, 0, `preflight passes on the lab:\n${pre.stdout}${pre.stderr}`);
    assert.match(pre.stdout, /flannel \(DaemonSet kube-flannel\/kube-flannel-ds\), pod CIDR 10\.244\.0\.0\/16 \(net-conf\.json in kube-flannel\/kube-flannel-cfg\), VXLAN on UDP 8472/);
    await prepareStep(s, progress);
    const timings: string[] = [];
    // Each node's own step: while it is drained, restarted and its network rebuilt, the only pods
    // on it are DaemonSet pods, the checker among them; their own requests may fail then.
    const steps: { node: string; from: number; to: number }[] = [];
    for (const node of seedOrder(lab.nodes.map((n) => n.name))) {
      const t0 = Date.now();
      if (node === 'kind-worker2') await brokenOverlayStopsTheGate(node);
      // The workers with the plugin's default --restart kind (the lab's docker on PATH);
      // kind-control-plane through the reboot method (a privileged pod, nsenter, systemctl reboot).
      const flags = node === 'kind-control-plane' ? [...labNodeFlags(), '--restart', 'reboot', '--yes', '--host-image', labHostCommandImage] : labNodeFlags();
      const r = await s.plugin(['node', node, ...flags], progress);
      assert.equal(r.code, 0, `node ${node}:\n${r.stdout}\n${r.stderr}`);
      // kind-worker2 resumes after its broken run (restarted then by --restart exec): from its gate.
      if (node === 'kind-worker') assert.match(r.stdout, /restart-node\s+applied\s+restarted \(kind\)/);
      if (node === 'kind-worker2') assert.match(r.stdout, /restart-node\s+done-before[\s\S]*gate\s+applied\s+PASS/);
      if (node === 'kind-worker') await seedManualCheck(node);
      timings.push(`${node} ${((Date.now() - t0) / 1000).toFixed(0)}s`);
      steps.push({ node, from: t0, to: Date.now() });
    }
    assert.deepEqual((await migratedNodes(s)).sort(), ['kind-control-plane', 'kind-worker', 'kind-worker2']);
    const f0 = Date.now();
    await finalizeStep(s, progress);
    timings.push(`finalize ${((Date.now() - f0) / 1000).toFixed(0)}s`);
    // finalize --apply: the release upgraded by helm to the final values, the agents restarted with them.
    const release = JSON.parse(execFileSync(kindPaths(stateDir).helm, ['--kubeconfig', s.kubeconfig, '-n', 'kube-system', 'list', '-o', 'json'], { encoding: 'utf8' })) as { name: string; revision: string; status: string }[];
    assert.deepEqual(release.map((r) => [r.name, r.revision, r.status]), [['cilium', '2', 'deployed']], 'helm upgrade made revision 2');
    const config = await api<{ data: Record<string, string> }>(s.kube, 'GET', '/api/v1/namespaces/kube-system/configmaps/cilium-config');
    assert.equal(config.data['custom-cni-conf'], 'false', 'Cilium runs with its final values');
    for (const a of await ciliumStatusSettled(s)) assert.match(a.status, /^OK\b/, `cilium-dbg status on ${a.node}`);
    // A few more rounds of traffic with everything on Cilium.
    await new Promise((r) => setTimeout(r, 3000));

    const nginx = await podsPerOverlay(s, 'app=nginx');
    assert.equal(nginx.pods.length, 10);
    for (const p of nginx.pods) assert.ok(cidrContains(ciliumClusterCidr, p.ip), `${p.name} is on Cilium (${p.ip})`);
    assert.equal(await flannelInstalled(s), false, 'Flannel is removed');
    for (const n of lab.nodes) {
      // finalize --cleanup-nodes ran its host script on each lab node, not on this machine.
      assert.throws(() => inNode(stateDir, n.name, ['ip', 'link', 'show', 'flannel.1']), /does not exist/, `flannel.1 is gone from ${n.name}`);
      assert.deepEqual(inNode(stateDir, n.name, ['ls', '/etc/cni/net.d']).trim().split('\n'), ['05-cilium.conflist'], `${n.name} keeps only Cilium's CNI config`);
    }

    // The checkers' records, from each node's /var (the node's own directory on this machine).
    const resultDirs = lab.nodes.map((n) => join(kindPaths(stateDir).nodes, n.name, 'var', trafficResultsHostPath.replace(/^\/var\//, '')));
    const records = resultDirs.flatMap((d) => readdirSync(d).map((f) => join(d, f))).flatMap((f) => readFileSync(f, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as TrafficRecord));
    const failures = records.filter((r) => !r.ok);
    const drained = (r: TrafficRecord) => {
      const at = deletionRequested.get(r.dstUid);
      return at !== undefined && at <= Date.parse(r.t) + r.ms + 1000;
    };
    // While Cilium's VXLAN port was dropped on kind-worker2 (on purpose), its own traffic could fail.
    const faulted = (r: TrafficRecord) => fault.from > 0 && Date.parse(r.t) >= fault.from && Date.parse(r.t) <= fault.to + 3000 && (r.srcNode === 'kind-worker2' || r.dstNode === 'kind-worker2');
    const fromNodeInItsStep = (r: TrafficRecord) => steps.some((st) => st.node === r.srcNode && Date.parse(r.t) >= st.from && Date.parse(r.t) <= st.to + 3000);
    // The seed's nginx has no readiness probe: a new replica is Ready when its container starts,
    // a moment before nginx listens. A refusal in a pod's first seconds as a target is that, not
    // the migration.
    const firstSeen = new Map<string, number>();
    for (const r of records) firstSeen.set(r.dstUid, Math.min(firstSeen.get(r.dstUid) ?? Infinity, Date.parse(r.t)));
    const notListeningYet = (r: TrafficRecord) => /ECONNREFUSED/.test(r.error ?? '') && Date.parse(r.t) - firstSeen.get(r.dstUid)! < 5000;
    // The zero holds for the migration (every node's steps); finalize restarts every Cilium agent
    // with its final values, and what failed then is counted and shown, not asserted zero.
    const inFinalize = (r: TrafficRecord) => Date.parse(r.t) >= f0;
    const excused = (r: TrafficRecord) => drained(r) || faulted(r) || fromNodeInItsStep(r) || notListeningYet(r);
    const unexpected = failures.filter((r) => !excused(r) && !inFinalize(r));
    const duringFinalize = failures.filter((r) => !excused(r) && inFinalize(r));
    const groups = new Map<string, number>();
    for (const r of unexpected) {
      const key = `${r.t.slice(11, 18)}x ${r.srcNode}(${r.srcIp}) -> ${r.dstNode}: ${r.error ?? ''}`;
      groups.set(key, (groups.get(key) ?? 0) + 1);
    }
    const stepsSeen = steps.map((st) => `${st.node} ${new Date(st.from).toISOString().slice(11, 19)}-${new Date(st.to).toISOString().slice(11, 19)}`).join(', ');
    assert.ok(records.length > 500, `the checkers made plenty of requests (${records.length})`);
    assert.equal(unexpected.length, 0, `requests to pods that were not being drained failed (steps ${stepsSeen}; fault ${new Date(fault.from).toISOString().slice(11, 19)}-${new Date(fault.to).toISOString().slice(11, 19)}):\n${[...groups].map(([k, n]) => `${n} x ${k}`).join('\n')}\n${unexpected.slice(0, 5).map((r) => JSON.stringify(r)).join('\n')}`);
    const on = (cidr: string, ip: string) => cidrContains(cidr, ip);
    const legacyToCilium = records.filter((r) => r.ok && on(legacyClusterCidr, r.srcIp) && on(ciliumClusterCidr, r.dstIp));
    const ciliumToLegacy = records.filter((r) => r.ok && on(ciliumClusterCidr, r.srcIp) && on(legacyClusterCidr, r.dstIp));
    assert.ok(legacyToCilium.length > 0, 'legacy pods reached Cilium pods mid-migration');
    assert.ok(ciliumToLegacy.length > 0, 'Cilium pods reached legacy pods mid-migration');
    progress(`traffic: ${records.length} requests, ${failures.length} failed (to pods being drained, across the broken overlay, from a node in its own step, to a replica not listening yet${duringFinalize.length ? `; ${duringFinalize.length} during finalize's agent restarts: ${[...new Set(duringFinalize.map((r) => `${r.t.slice(11, 19)} ${r.srcNode}->${r.dstNode} ${r.error ?? ''}`))].slice(0, 5).join('; ')}` : ''}), ${legacyToCilium.length} legacy->cilium and ${ciliumToLegacy.length} cilium->legacy; ${timings.join(', ')}`);
    process.stdout.write(`# ${log[log.length - 1]}\n`);
  });

  const fault = { from: 0, to: 0 };

  /**
   * Negative: Cilium's VXLAN port dropped on the node once it is back from its reboot (an iptables
   * rule in the node's network namespace, never the machine's) with its probe agent Ready. The gate
   * must fail that node's step naming the tunnel port and leave the node cordoned; with the port
   * open again, rerunning the node's command resumes and completes.
   */
  async function brokenOverlayStopsTheGate(node: string): Promise<void> {
    const lab = s.labCommand;
    // The fault's window, for the traffic check: the whole run of the step it breaks.
    fault.from = Date.now();
    const agentReady = `${s.kubectlPath} --kubeconfig ${s.kubeconfig} -n cilium-migrate wait pod -l app.kubernetes.io/name=cilium-migrate-agent --field-selector spec.nodeName={node} --for=condition=Ready --timeout=120s`;
    const broken = await s.plugin(['node', node, ...labNodeFlags(), '--restart', 'exec', '--restart-command', `${lab} reboot-node {node} && ${agentReady} && ${lab} drop-udp {node} 8473`, '--gate-timeout', '30s'], progress);
    try {
      assert.equal(broken.code, 8, `the gate fails (exit 8):\n${broken.stdout}\n${broken.stderr}`);
      assert.match(broken.stderr, new RegExp(`gate for ${node}: FAIL`));
      assert.match(broken.stderr, /tunnel port UDP 8473/, 'the message names the tunnel port');
      const n = await api<{ spec: { unschedulable?: boolean } }>(s.kube, 'GET', `/api/v1/nodes/${node}`);
      assert.equal(n.spec.unschedulable, true, `${node} stays cordoned`);
    } finally {
      await labUdpPort(stateDir, node, 8473, 'restore');
      fault.to = Date.now();
    }
  }

  /** The seed's check: a pod pinned to the migrated node gets a 10.245 address and fetches a page from an nginx pod still on the legacy overlay. */
  async function seedManualCheck(node: string): Promise<void> {
    const legacy = (await podsPerOverlay(s, 'app=nginx')).pods.find((p) => cidrContains(legacyClusterCidr, p.ip));
    assert.ok(legacy, 'an nginx pod is still on the legacy overlay');
    s.kubectl(['run', '--restart=Never', 'verify', `--overrides=${JSON.stringify({ spec: { nodeName: node, tolerations: [{ operator: 'Exists' }] } })}`, '--image', 'alpine/curl', '--env', `NGINX=${legacy.ip}`, '--', '/bin/sh', '-c', 'ip -4 addr show eth0 && curl -s $NGINX']);
    const pod = await waitUntil('the verify pod to complete', async () => {
      const p = await api<{ status: { phase?: string; podIP?: string } }>(s.kube, 'GET', '/api/v1/namespaces/default/pods/verify');
      return p.status.phase === 'Succeeded' || p.status.phase === 'Failed' ? p : undefined;
    }, 30_000);
    // Through the API server, as the seed reads it: pods/log, which the lab's kubelet API serves.
    const output = s.kubectl(['logs', 'verify']);
    assert.equal(pod.status.phase, 'Succeeded', output);
    assert.ok(cidrContains(ciliumClusterCidr, pod.status.podIP ?? ''), `the verify pod got a Cilium address (${pod.status.podIP})`);
    assert.match(output, new RegExp(`inet ${pod.status.podIP!.replace(/\./g, '\\.')}/32`));
    assert.match(output, /<title>Welcome to nginx!<\/title>/, `${legacy.name} (${legacy.ip}) answered`);
    s.kubectl(['delete', 'pod', 'verify', '--wait=true']);
  }

  it('lab down leaves no namespace, link, mount, process or file behind', async () => {
    // Our own watch would hold the API server's graceful shutdown open.
    watcher?.stop();
    const r = await labDown({ stateDir, progress });
    assert.equal(r.wasRunning, true);
    const prefix = `${lab.underlayNetns.split('-')[0]!}-`;
    assert.deepEqual(netnsNames().filter((n) => n.startsWith(prefix)), [], 'no namespace of the lab');
    assert.deepEqual(netnsMounts().filter((m) => m.includes(`/run/netns/${prefix}`)), [], 'no namespace mount of the lab');
    assert.deepEqual(rootLinks().filter((l) => !before0.links.includes(l)), [], 'no link added to the root namespace');
    assert.deepEqual(pidsMentioning(stateDir), [], 'no process of the lab');
    assert.equal(existsSync(stateDir), false, 'the state directory is gone');
    assert.deepEqual(readdirSync(tmpdir()).filter((d) => d.startsWith('cilium-migrate-cp-') && !before0.cpDirs.includes(d)), [], 'no control-plane directory');
  });
});

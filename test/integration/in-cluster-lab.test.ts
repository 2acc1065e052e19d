// run --in-cluster on the real-node lab with real Cilium: the Job's pod is the project's image, run
// by a real kubelet and containerd, the plugin inside it on its in-cluster credentials, restarting
// nodes with `--restart reboot` (its privileged pod's `nsenter -t 1 ... systemctl reboot`, which the
// lab's nodes obey with a new bootID). What a person sees: the run started and detached from, its
// progress in `status` from another terminal, `--cancel` stopping it at a safe point with its state
// recorded, a later `run --in-cluster` resuming it. The resumed run's pod sits on a worker the run
// still has to migrate, so the drain of its own node evicts it: the real kubelet sends SIGTERM, the
// run stops at a safe point and releases the lock, the Job starts a new pod on another node, which
// resumes. Every node ends on Cilium, each step done once; a rollback of kind-worker and its second
// migration follow; `finalize --apply` then leaves the cluster as `make demo` does.
// The lab runs a layout other than the seed's (10.42.0.0/16 and VXLAN 8555 for Flannel, 10.200.0.0/16
// and VXLAN 8666 for Cilium, Cilium's release in namespace `cilium`), and every plugin command gets
// --cilium-namespace cilium, so the run's RBAC covers that namespace as a kustomize overlay of
// manifests/rbac would: the checks below fail if the lab or the plugin fell back to the seed's.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { labDown, labStatus, labUp } from '../../lab/cli.js';
import { defaultBinDir } from '../../lab/control-plane.js';
import { statePaths } from '../../lab/daemon.js';
import { labHostCommandImage } from '../../lab/images/catalog.js';
import { ciliumStatusSettled, finalizeStep } from '../../lab/demo.js';
import { pluginLayoutFlags, type LabLayout } from '../../lab/layout.js';
import { flannelInstalled, scenario } from '../../lab/scenario.js';
import { cidrContains } from '../../lib/cidr.js';
import { inClusterRun, lockLeaseName } from '../../lib/defaults.js';
import { phaseAnnotation } from '../../lib/node-state.js';
import { repoRoot, runPlugin } from '../harness/plugin.js';
import { eventually } from '../harness/wait.js';

const labJs = join(repoRoot, 'dist', 'lab.js');
const kubectlBin = join(defaultBinDir(), 'kubectl');
const ns = 'cilium-migrate';
const nodeNames = ['kind-control-plane', 'kind-worker', 'kind-worker2'];
const layout: LabLayout = { legacyCidr: '10.42.0.0/16', ciliumCidr: '10.200.0.0/16', legacyTunnelPort: 8555, ciliumTunnelPort: 8666, ciliumNamespace: 'cilium' };

/** manifests/rbac's file with its Cilium namespace (kube-system there) moved to the layout's, as a kustomize overlay would. */
function rbacFor(file: string): string {
  return parseAllDocuments(readFileSync(join(repoRoot, 'manifests', 'rbac', file), 'utf8')).map((d) => d.toJSON() as { metadata?: { namespace?: string } } | null)
    .filter((d) => d !== null)
    .map((d) => JSON.stringify(d.metadata?.namespace === 'kube-system' ? { ...d, metadata: { ...d.metadata, namespace: layout.ciliumNamespace } } : d)).join('\n');
}

/** `ip -d link show DEV` in a lab node's network namespace. */
const linkDetails = (netns: string, dev: string) => execFileSync('ip', ['-n', netns, '-d', 'link', 'show', dev], { encoding: 'utf8' });

interface Pod {
  metadata: { name: string; uid: string };
  spec: { nodeName?: string; hostNetwork?: boolean };
  status: { phase?: string; podIP?: string };
}

describe('run --in-cluster on the real-node lab with real Cilium: detached, watched, cancelled, resumed', () => {
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
  // Every command with the layout's flags (--cilium-namespace cilium), as this cluster's user passes them.
  const plugin = (args: string[], opts: Parameters<typeof runPlugin>[1] = {}) => runPlugin([...args, ...pluginLayoutFlags(layout, args[0]!), '--kubeconfig', statePaths(stateDir).kubeconfig], { env: { PATH: process.env.PATH ?? '', HOME: stateDir }, ...opts });
  // The run flags: reboots through the run's privileged pods (the lab's alpine stand-in has sh and
  // nsenter), the gate from the cluster's state (this lab runs no probe agents).
  const runFlags = ['--restart', 'reboot', '--yes', '--host-image', labHostCommandImage, '--gate', 'cluster-state', '--gate-interval', '2s', '--restart-timeout', '300s', '--agent-restart-timeout', '300s'];
  const runPods = async () => (JSON.parse(await must(['-n', ns, 'get', 'pods', '-l', `batch.kubernetes.io/job-name=${inClusterRun.name}`, '-o', 'json'])) as { items: Pod[] }).items;

  before(async () => {
    stateDir = mkdtempSync(join(tmpdir(), 'in-cluster-lab-'));
    await labUp({ stateDir, nodes: 3, layout, labJs, progress: (l) => log.push(l) });
    await must(['create', 'namespace', ns]);
    for (const file of ['plugin.yaml', 'in-cluster.yaml']) await must(['apply', '--server-side', '-f', '-'], rbacFor(file));
    const prepare = await plugin(['prepare']);
    assert.equal(prepare.code, 0, prepare.stderr);
  });

  after(async () => {
    if (stateDir && existsSync(stateDir)) await labDown({ stateDir, progress: (l) => log.push(l) }).catch(() => undefined);
  });

  it('the lab runs the layout it was given: Flannel and Cilium on their CIDRs and ports, Cilium in namespace cilium', async () => {
    const st = await labStatus(stateDir);
    assert.deepEqual(st.layout, layout, 'lab status records the layout');
    for (const n of st.nodes) {
      assert.ok(cidrContains(layout.legacyCidr, n.podCIDR.split('/')[0]!), `${n.name}'s podCIDR ${n.podCIDR} is in the legacy CIDR`);
      // Flannel's VXLAN device and Cilium's, each on its own port, in the node's network namespace.
      assert.match(linkDetails(n.netns, 'flannel.1'), /\bvxlan id 1 .*\bdstport 8555\b/s, `${n.name}: flannel.1 on UDP 8555`);
      assert.match(linkDetails(n.netns, 'cilium_vxlan'), /\bvxlan\b.*\bdstport 8666\b/s, `${n.name}: cilium_vxlan on UDP 8666`);
    }
    const config = (JSON.parse(await must(['-n', 'cilium', 'get', 'configmap', 'cilium-config', '-o', 'json'])) as { data: Record<string, string> }).data;
    assert.deepEqual([config['cluster-pool-ipv4-cidr'], config['tunnel-port'], config['custom-cni-conf']], ['10.200.0.0/16', '8666', 'true']);
    const agents = (JSON.parse(await must(['get', 'pods', '-A', '-l', 'k8s-app=cilium', '-o', 'json'])) as { items: (Pod & { metadata: { namespace: string } })[] }).items;
    assert.deepEqual([...new Set(agents.map((p) => p.metadata.namespace))], ['cilium'], 'the agents run in namespace cilium only');
    assert.equal(agents.length, nodeNames.length);
    const cnc = await kubectl(['-n', 'cilium', 'get', 'ciliumnodeconfig', 'cilium-default']);
    assert.equal(cnc.code, 0, `prepare applied the CiliumNodeConfig in namespace cilium: ${cnc.stderr}`);
    const ciliumNodes = (JSON.parse(await must(['get', 'ciliumnodes', '-o', 'json'])) as { items: { metadata: { name: string }; spec: { ipam?: { podCIDRs?: string[] } } }[] }).items;
    for (const cn of ciliumNodes) assert.ok((cn.spec.ipam?.podCIDRs ?? []).every((c) => cidrContains(layout.ciliumCidr, c.split('/')[0]!)) && cn.spec.ipam?.podCIDRs?.length, `${cn.metadata.name}: ${cn.spec.ipam?.podCIDRs?.join(',')}`);
  });

  it('starts detached; status from another terminal shows the run at its first node; --cancel stops it at a safe point with its state recorded', async () => {
    let sent = false;
    const started = await plugin(['run', '--in-cluster', ...runFlags], { onStderr: (text, kill) => void (!sent && /: Running\n/.test(text) && (kill('SIGINT'), (sent = true))), timeoutMs: 300_000 });
    assert.equal(started.code, 0, started.stderr);
    assert.match(started.stderr, /SIGINT: detaching; the run goes on in job cilium-migrate\/cilium-migrate-run/);
    assert.match(started.stderr, /detached: the run goes on in the cluster/);

    // Cancel while kind-worker (the first node) is under way, before its restart: the resumed run
    // must then finish it, and its pod can only go to kind-worker2, whose own drain evicts it.
    const phase = async (node: string) => ((JSON.parse(await must(['get', 'node', node, '-o', 'json'])) as { metadata: { annotations?: Record<string, string> } }).metadata.annotations ?? {})[phaseAnnotation];
    const at = await eventually('kind-worker under way', async () => {
      const p = await phase('kind-worker');
      return p === 'cordon' || p === 'drain' || p === 'label' || p === 'restart-agent' ? p : undefined;
    }, 300_000, 500);
    log.push(`cancelling with kind-worker at ${at}`);
    // The run holds its lock in Cilium's namespace, the one it was told, not kube-system. When the
    // run's pod landed on kind-worker, that node's drain evicts it: the pod releases the lock at a
    // safe point and the Job's next pod takes it again, so the lease may be missing for a moment.
    let lastLook = '';
    await eventually('the run\'s lock held in namespace cilium', async () => {
      const held = await kubectl(['-n', 'cilium', 'get', 'lease', lockLeaseName, '-o', 'json']);
      lastLook = held.code === 0 ? held.stdout : held.stderr;
      return held.code === 0 && (JSON.parse(held.stdout) as { spec: { holderIdentity?: string } }).spec.holderIdentity ? true : undefined;
    }, 120_000, 500).catch((err: Error) => assert.fail(`${err.message}; last look: ${lastLook}`));
    assert.notEqual((await kubectl(['-n', 'kube-system', 'get', 'lease', lockLeaseName])).code, 0, 'no lock in kube-system');
    // From another terminal: the run, its pod and node, and where it is.
    const status = (await plugin(['status'])).stdout;
    assert.match(status, /^in-cluster run: job cilium-migrate\/cilium-migrate-run, running /m);
    assert.match(status, /^ {2}pod cilium-migrate-run-\S+ on kind-worker2?: (Running|Terminating)$/m);
    assert.match(status, /^kind-worker\s.*(cordon|drain|label|restart-agent|restart-node)/m, status);

    const cancel = await plugin(['run', '--in-cluster', '--cancel'], { timeoutMs: 300_000 });
    assert.equal(cancel.code, 0, cancel.stderr);
    assert.match(cancel.stderr, /the run stopped at a safe point, its state recorded on the nodes/);
    const after = await plugin(['status']);
    assert.match(after.stdout, /^in-cluster run: job cilium-migrate\/cilium-migrate-run, cancelled /m);
    assert.match(after.stdout, /^ {2}cancel requested /m);
    assert.doesNotMatch(after.stdout, /^3 of 3 nodes migrated/m, 'it stopped before the end');
    // Its state is on the node it was at, and the lock is free for the next run.
    assert.notEqual(await phase('kind-worker'), 'migrated', 'kind-worker stopped mid-migration');
    const lease = await kubectl(['-n', 'cilium', 'get', 'lease', lockLeaseName, '-o', 'json']);
    assert.ok(lease.code !== 0 || !(JSON.parse(lease.stdout) as { spec: { holderIdentity?: string } }).spec.holderIdentity, `the lock was released: ${lease.stdout}`);
    assert.deepEqual((await runPods()).filter((p) => p.status.phase === 'Running' || p.status.phase === 'Pending'), [], 'no run pod left running');
  });

  it('a later run --in-cluster resumes unattended: the run pod evicted by its own drain hands over, every node ends on Cilium, each step once', async () => {
    // Started and left at once: the terminal that started it is gone while the run goes on.
    let sent = false;
    const started = await plugin(['run', '--in-cluster', ...runFlags], { onStderr: (text, kill) => void (!sent && /: Running\n/.test(text) && (kill('SIGINT'), (sent = true))), timeoutMs: 300_000 });
    assert.equal(started.code, 0, started.stderr);
    assert.match(started.stderr, /replacing the cancelled run in job cilium-migrate\/cilium-migrate-run; the new one resumes from the state on the nodes/);
    assert.match(started.stderr, /detached: the run goes on in the cluster/);
    // Another terminal looks on until the end; it drives nothing.
    const r = await plugin(['run', '--in-cluster', '--attach'], { timeoutMs: 1_500_000 });
    assert.equal(r.code, 0, r.stderr.slice(-4000));
    assert.match(r.stderr, /^\[kind-worker\] resuming at /m, 'the node the cancel stopped at is resumed, not started over');
    // kind-worker is cordoned mid-migration, so the new pod runs on kind-worker2, whose drain evicts it.
    const evicted = [...r.stderr.matchAll(/^pod (\S+) on (\S+): stopped by the cluster \(EvictionByEvictionAPI/gm)].map((m) => ({ pod: m[1]!, node: m[2]! }));
    assert.ok(evicted.length >= 1, 'a run pod was evicted by a drain');
    const first = evicted[0]!;
    const rest = r.stderr.slice(r.stderr.indexOf(`pod ${first.pod} on ${first.node}: stopped by the cluster`));
    const next = /^pod (\S+) on (\S+): Running$/m.exec(rest);
    assert.ok(next && next[1] !== first.pod && next[2] !== first.node, `a new pod on another node: ${next?.[0]}`);
    assert.match(r.stderr, /finished: every node is migrated/);

    const job = JSON.parse(await must(['-n', ns, 'get', 'job', inClusterRun.name, '-o', 'json'])) as { status: { failed?: number; succeeded?: number } };
    assert.equal(job.status.succeeded, 1);
    assert.equal(job.status.failed ?? 0, 0, 'the evictions did not count as failures');
    const status = await plugin(['status']);
    assert.match(status.stdout, /^3 of 3 nodes migrated, /m);
    assert.match(status.stdout, /^in-cluster run: job cilium-migrate\/cilium-migrate-run, finished /m);

    // As after make demo's node steps: every node on Cilium, every pod there on Cilium's addresses.
    const docker = join(stateDir, 'bin', 'docker');
    for (const n of nodeNames) {
      const files = await new Promise<string>((resolve) => execFile(docker, ['exec', n, 'ls', '/etc/cni/net.d'], (_e, out) => resolve(out)));
      assert.match(files, /^05-cilium\.conflist$/m, `${n} writes Cilium's CNI config`);
    }
    const pods = (JSON.parse(await must(['get', 'pods', '-A', '-o', 'json'])) as { items: Pod[] }).items.filter((p) => !p.spec.hostNetwork && p.status.phase === 'Running' && p.status.podIP);
    const stray = pods.filter((p) => !cidrContains(layout.ciliumCidr, p.status.podIP!)).map((p) => `${p.metadata.name}@${p.spec.nodeName} ${p.status.podIP}`);
    assert.deepEqual(stray, [], 'every running pod has an address in the Cilium CIDR 10.200.0.0/16');
    assert.ok(pods.length > 0);
    // lab status counts them the same way, by the layout's Cilium CIDR.
    const counts = (await labStatus(stateDir)).nodes.map((n) => n.pods);
    assert.equal(counts.reduce((a, c) => a + c.legacy, 0), 0, `lab status: no pod on the legacy network: ${JSON.stringify(counts)}`);
    assert.ok(counts.reduce((a, c) => a + c.cilium, 0) > 0, `lab status: pods on Cilium: ${JSON.stringify(counts)}`);

    // Nothing done twice across the cancel and the hand-overs: each step of each node announced once.
    const events = (JSON.parse(await must(['get', 'events', '-A', '-o', 'json'])) as { items: { reason: string; message: string; firstTimestamp: string; involvedObject: { kind: string; name: string } }[] }).items;
    for (const node of nodeNames) {
      for (const reason of ['MigrationCordon', 'MigrationDrain', 'MigrationLabel', 'MigrationUncordon', 'MigrationComplete']) {
        const seen = events.filter((e) => e.involvedObject.kind === 'Node' && e.involvedObject.name === node && e.reason === reason);
        assert.equal(seen.length, 1, `${node} ${reason} once: ${seen.map((e) => `${e.firstTimestamp} ${e.message}`).join(' | ')}\n${r.stderr}`);
      }
    }
  });

  it('rollback kind-worker with Cilium in namespace cilium returns it to Flannel (a new pod in 10.42.0.0/16); node kind-worker moves it back', async () => {
    // From this terminal with the lab's docker on PATH (the default --restart kind), as make demo runs.
    const env = { PATH: `${join(stateDir, 'bin')}:${process.env.PATH ?? ''}`, HOME: stateDir };
    const docker = join(stateDir, 'bin', 'docker');
    const cniFiles = () => execFileSync(docker, ['exec', 'kind-worker', 'ls', '/etc/cni/net.d'], { encoding: 'utf8' }).trim().split('\n');
    const waits = ['--restart-timeout', '300s', '--agent-restart-timeout', '300s'];
    const r = await plugin(['rollback', 'kind-worker', '--host-image', labHostCommandImage, ...waits], { env, timeoutMs: 900_000 });
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr.slice(-4000)}`);
    // Its verify pod's address is judged by cilium-config in namespace cilium (the pool 10.200.0.0/16).
    assert.match(r.stdout, /verify\s+applied\s+a new pod got 10\.42\./, r.stdout);
    assert.match(r.stdout, /^kind-worker: rolled back to the legacy CNI$/m);
    assert.deepEqual(cniFiles(), ['10-flannel.conflist'], 'Flannel\'s config restored, Cilium\'s gone');
    // The node was restarted last: its Cilium agent (in namespace cilium) is Ready again before the
    // next migration, whose baseline gate refuses a node without one.
    await eventually('a Ready Cilium agent on kind-worker', async () => {
      const agents = (JSON.parse(await must(['-n', 'cilium', 'get', 'pods', '-l', 'k8s-app=cilium', '--field-selector', 'spec.nodeName=kind-worker', '-o', 'json'])) as { items: { status: { conditions?: { type: string; status: string }[] } }[] }).items;
      return agents.some((a) => a.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')) ? true : undefined;
    }, 300_000, 1000);
    const again = await plugin(['node', 'kind-worker', '--gate', 'cluster-state', '--gate-interval', '2s', ...waits], { env, timeoutMs: 900_000 });
    assert.equal(again.code, 0, again.stderr.slice(-4000));
    assert.ok(cniFiles().includes('05-cilium.conflist'), `kind-worker back on Cilium: ${cniFiles().join(' ')}`);
  });

  it('finalize afterwards leaves the cluster as make demo does: Cilium with its final values, Flannel gone, only Cilium\'s CNI config', async () => {
    const s = scenario({ kubeconfig: statePaths(stateDir).kubeconfig, distDir: join(repoRoot, 'dist'), stateDir, layout });
    await finalizeStep(s, (l) => log.push(l));
    assert.equal(await flannelInstalled(s), false, 'Flannel is removed');
    const agents = await ciliumStatusSettled(s);
    assert.equal(agents.length, nodeNames.length, 'an agent per node in namespace cilium');
    for (const a of agents) assert.match(a.status, /^OK\b/, `cilium-dbg status on ${a.node}`);
    // The helm upgrade of the release in namespace cilium wrote the final values, keeping the layout's pool and port.
    const config = (JSON.parse(await must(['-n', 'cilium', 'get', 'configmap', 'cilium-config', '-o', 'json'])) as { data: Record<string, string> }).data;
    assert.deepEqual([config['cluster-pool-ipv4-cidr'], config['tunnel-port']], ['10.200.0.0/16', '8666']);
    assert.notEqual(config['custom-cni-conf'], 'true', 'out of migration mode');
    assert.notEqual((await kubectl(['-n', 'cilium', 'get', 'ciliumnodeconfig', 'cilium-default'])).code, 0, 'finalize deleted the CiliumNodeConfig in namespace cilium');
    const docker = join(stateDir, 'bin', 'docker');
    for (const n of nodeNames) {
      const files = await new Promise<string>((resolve) => execFile(docker, ['exec', n, 'ls', '/etc/cni/net.d'], (_e, out) => resolve(out)));
      assert.deepEqual(files.trim().split('\n'), ['05-cilium.conflist'], `${n} keeps only Cilium's CNI config`);
    }
  });
});

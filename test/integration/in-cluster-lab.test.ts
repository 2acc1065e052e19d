// run --in-cluster on the real-node lab with real Cilium: the Job's pod is the project's image, run
// by a real kubelet and containerd, the plugin inside it on its in-cluster credentials, restarting
// nodes with `--restart reboot` (its privileged pod's `nsenter -t 1 ... systemctl reboot`, which the
// lab's nodes obey with a new bootID). What a person sees: the run started and detached from, its
// progress in `status` from another terminal, `--cancel` stopping it at a safe point with its state
// recorded, a later `run --in-cluster` resuming it. The resumed run's pod sits on a worker the run
// still has to migrate, so the drain of its own node evicts it: the real kubelet sends SIGTERM, the
// run stops at a safe point and releases the lock, the Job starts a new pod on another node, which
// resumes. Every node ends on Cilium, each step done once; `finalize --apply` then leaves the
// cluster as `make demo` does.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { labDown, labUp } from '../../lab/cli.js';
import { defaultBinDir } from '../../lab/control-plane.js';
import { statePaths } from '../../lab/daemon.js';
import { labHostCommandImage } from '../../lab/images/catalog.js';
import { ciliumStatusSettled, finalizeStep } from '../../lab/demo.js';
import { flannelInstalled, scenario } from '../../lab/scenario.js';
import { cidrContains } from '../../lib/cidr.js';
import { ciliumClusterCidr, inClusterRun, lockLeaseName } from '../../lib/defaults.js';
import { phaseAnnotation } from '../../lib/node-state.js';
import { repoRoot, runPlugin } from '../harness/plugin.js';
import { eventually } from '../harness/wait.js';

const labJs = join(repoRoot, 'dist', 'lab.js');
const kubectlBin = join(defaultBinDir(), 'kubectl');
const ns = 'cilium-migrate';
const nodeNames = ['kind-control-plane', 'kind-worker', 'kind-worker2'];

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
  const plugin = (args: string[], opts: Parameters<typeof runPlugin>[1] = {}) => runPlugin([...args, '--kubeconfig', statePaths(stateDir).kubeconfig], { env: { PATH: process.env.PATH ?? '', HOME: stateDir }, ...opts });
  // The run flags: reboots through the run's privileged pods (the lab's alpine stand-in has sh and
  // nsenter), the gate from the cluster's state (this lab runs no probe agents).
  const runFlags = ['--restart', 'reboot', '--yes', '--host-image', labHostCommandImage, '--gate', 'cluster-state', '--gate-interval', '2s', '--restart-timeout', '300s', '--agent-restart-timeout', '300s'];
  const runPods = async () => (JSON.parse(await must(['-n', ns, 'get', 'pods', '-l', `batch.kubernetes.io/job-name=${inClusterRun.name}`, '-o', 'json'])) as { items: Pod[] }).items;

  before(async () => {
    stateDir = mkdtempSync(join(tmpdir(), 'in-cluster-lab-'));
    await labUp({ stateDir, nodes: 3, labJs, progress: (l) => log.push(l) });
    await must(['create', 'namespace', ns]);
    for (const file of ['plugin.yaml', 'in-cluster.yaml']) await must(['apply', '--server-side', '-f', join(repoRoot, 'manifests', 'rbac', file)]);
    const prepare = await plugin(['prepare']);
    assert.equal(prepare.code, 0, prepare.stderr);
  });

  after(async () => {
    if (stateDir && existsSync(stateDir)) await labDown({ stateDir, progress: (l) => log.push(l) }).catch(() => undefined);
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
    const lease = await kubectl(['-n', 'kube-system', 'get', 'lease', lockLeaseName, '-o', 'json']);
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
    const stray = pods.filter((p) => !cidrContains(ciliumClusterCidr, p.status.podIP!)).map((p) => `${p.metadata.name}@${p.spec.nodeName} ${p.status.podIP}`);
    assert.deepEqual(stray, [], 'every running pod has a Cilium address');

    // Nothing done twice across the cancel and the hand-overs: each step of each node announced once.
    const events = (JSON.parse(await must(['get', 'events', '-A', '-o', 'json'])) as { items: { reason: string; message: string; firstTimestamp: string; involvedObject: { kind: string; name: string } }[] }).items;
    for (const node of nodeNames) {
      for (const reason of ['MigrationCordon', 'MigrationDrain', 'MigrationLabel', 'MigrationUncordon', 'MigrationComplete']) {
        const seen = events.filter((e) => e.involvedObject.kind === 'Node' && e.involvedObject.name === node && e.reason === reason);
        assert.equal(seen.length, 1, `${node} ${reason} once: ${seen.map((e) => `${e.firstTimestamp} ${e.message}`).join(' | ')}\n${r.stderr}`);
      }
    }
  });

  it('finalize afterwards leaves the cluster as make demo does: Cilium with its final values, Flannel gone, only Cilium\'s CNI config', async () => {
    const s = scenario({ kubeconfig: statePaths(stateDir).kubeconfig, distDir: join(repoRoot, 'dist'), stateDir });
    await finalizeStep(s, (l) => log.push(l));
    assert.equal(await flannelInstalled(s), false, 'Flannel is removed');
    for (const a of await ciliumStatusSettled(s)) assert.match(a.status, /^OK\b/, `cilium-dbg status on ${a.node}`);
    const docker = join(stateDir, 'bin', 'docker');
    for (const n of nodeNames) {
      const files = await new Promise<string>((resolve) => execFile(docker, ['exec', n, 'ls', '/etc/cni/net.d'], (_e, out) => resolve(out)));
      assert.deepEqual(files.trim().split('\n'), ['05-cilium.conflist'], `${n} keeps only Cilium's CNI config`);
    }
  });
});

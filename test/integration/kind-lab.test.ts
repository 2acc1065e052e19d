// The real-node lab end to end: `lab up` brings up kind's three nodes with real kubelets and
// containerd, kube-proxy and Flannel from its manifest, and nginx as the seed deploys it; pods on
// every node reach it; kubectl logs, exec and the seed's `kubectl run --attach --rm` work; a node
// restarted as `docker restart` does it shows what it shows on kind; the engine's restart methods
// complete on real kubelets by the signals each really changes; real Cilium from its chart (helm)
// runs next to Flannel, and `node kind-worker --restart kind` moves that node to it with its pods
// reaching Flannel's and back; `lab down`, and the reaper after a SIGKILL of the lab, leave nothing
// behind, and the machine's own sysctls, bpffs and cgroup2 mounts are as they were.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { kubeEngineCluster } from '../../cmd/cluster/kube-cluster.js';
import { restoreLegacyCniScript } from '../../cmd/engine/host-command.js';
import { execRestarter, kindRestarter, observeRestart, rebootCompletion, rebootRestarter, restartBaseline, restartCompletion, type CommandRunner, type NodeRestarter } from '../../cmd/engine/restart.js';
import { connect } from '../../lib/kube.js';
import { labDown, labStatus, labUp } from '../../lab/cli.js';
import { defaultBinDir } from '../../lab/control-plane.js';
import { statePaths, type LabStatus } from '../../lab/daemon.js';
import { labHostCommandImage } from '../../lab/images/catalog.js';
import { hierarchies, listNetns, ownerRecords } from '../../lab/node/lab-resources.js';
import { eventually } from '../harness/wait.js';
import { pluginPathDir, repoRoot } from '../harness/plugin.js';
import { cidrContains } from '../../lib/cidr.js';
import { ciliumClusterCidr } from '../../lib/defaults.js';

const labJs = join(repoRoot, 'dist', 'lab.js');
const kubectlBin = join(defaultBinDir(), 'kubectl');

interface PodJson {
  metadata: { name: string; uid: string; labels?: Record<string, string> };
  spec: { nodeName?: string };
  status: { podIP?: string; containerStatuses?: { restartCount: number; containerID?: string; ready: boolean }[] };
}
interface NodeJson {
  metadata: { name: string; labels: Record<string, string> };
  spec: { providerID?: string; podCIDR?: string; taints?: { key: string; effect: string }[] };
  status: { nodeInfo: { bootID: string; kubeletVersion: string; containerRuntimeVersion: string }; conditions: { type: string; status: string }[] };
}

/** What of lab `prefix` (state in `stateDir`) is on the machine: checked directly, not through the lab's own code. */
function traces(prefix: string, stateDir: string, pidNamespaces: string[]) {
  return {
    netns: listNetns().filter((n) => n.startsWith(`${prefix}-`)),
    cgroups: hierarchies().filter((h) => existsSync(`/sys/fs/cgroup/${h}/${prefix}`)),
    owner: ownerRecords().filter((r) => r.prefix === prefix).map((r) => r.prefix),
    mounts: readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4] ?? '').filter((m) => m.startsWith(stateDir) || m.includes(`/${prefix}-`)),
    processes: readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((p) => {
      try {
        return pidNamespaces.includes(readlinkSync(`/proc/${p}/ns/pid`));
      } catch {
        return false;
      }
    }),
    stateDir: existsSync(stateDir),
  };
}
const noTraces = { netns: [], cgroups: [], owner: [], mounts: [], processes: [], stateDir: false };

/** The PID namespaces of a lab's nodes (every process of a node is in its node's), through the lab's docker. */
function nodePidNamespaces(stateDir: string, nodes: string[]): string[] {
  return nodes.map((n) => readlinkSync(`/proc/${execFileSync(join(stateDir, 'bin', 'docker'), ['inspect', '-f', '{{.State.Pid}}', n], { encoding: 'utf8' }).trim()}/ns/pid`));
}

/**
 * What of the machine a lab must never change: the machine-wide sysctls Cilium's agent and kubelet
 * write (each node has its own files bound over them), the per-namespace ones of the machine's
 * network namespace, the bpffs and cgroup2 mounts of its mount namespace, the host paths the chart
 * would write to.
 */
function machineState() {
  const sysctls = ['kernel/unprivileged_bpf_disabled', 'kernel/timer_migration', 'kernel/panic', 'vm/overcommit_memory', 'net/core/bpf_jit_enable', 'net/ipv4/conf/all/rp_filter', 'net/ipv4/conf/all/forwarding', 'net/ipv4/conf/all/accept_local', 'net/ipv4/conf/all/send_redirects'];
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => / - (bpf|cgroup2) /.test(l)).map((l) => `${l.split(' ')[4]} ${l.split(' - ')[1]?.split(' ')[0]}`).sort();
  return {
    sysctls: Object.fromEntries(sysctls.map((f) => [f, readFileSync(`/proc/sys/${f}`, 'utf8').trim()])),
    mounts,
    paths: ['/etc/cni/net.d', '/opt/cni/bin', '/sys/fs/bpf/cilium', '/run/cilium', '/var/run/cilium', '/etc/sysctl.d/99-zzz-override_cilium.conf'].filter((p) => existsSync(p)),
  };
}

function kubectl(stateDir: string, args: string[], timeoutMs = 120_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(kubectlBin, [`--kubeconfig=${statePaths(stateDir).kubeconfig}`, ...args], { timeout: timeoutMs, maxBuffer: 32 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

async function json<T>(stateDir: string, args: string[]): Promise<T> {
  const r = await kubectl(stateDir, [...args, '-o', 'json']);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

describe('the real-node lab: kind without docker', () => {
  let stateDir: string;
  let lab: LabStatus;
  const log: string[] = [];
  const progress = (line: string) => log.push(line);
  const k = (args: string[], timeoutMs?: number) => kubectl(stateDir, args, timeoutMs);
  // `kubectl cilium-migrate ...` as users run it: the plugin, then the lab's docker, first on PATH.
  const inPluginPath = (pluginDir: string, args: string[], timeoutMs: number) => new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(kubectlBin, args, { timeout: timeoutMs, maxBuffer: 32 * 1024 * 1024, env: { ...process.env, KUBECONFIG: statePaths(stateDir).kubeconfig, PATH: `${pluginDir}:${join(stateDir, 'bin')}:${process.env.PATH ?? ''}` } }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
  const nodePods = async (node: string, selector = 'app=nginx') => (await json<{ items: PodJson[] }>(stateDir, ['get', 'pods', '-A', '-l', selector, '--field-selector', `spec.nodeName=${node}`])).items;
  const node = async (name: string) => json<NodeJson>(stateDir, ['get', 'node', name]);
  const events = async (fieldSelector: string) => (await json<{ items: { reason: string; source?: { component?: string }; lastTimestamp?: string; eventTime?: string; involvedObject: { name: string } }[] }>(stateDir, ['get', 'events', '-A', '--field-selector', fieldSelector])).items;

  // The machine's own values of two sysctls kubelet sets differently, read before any node runs.
  const machineSysctls = ['/proc/sys/vm/overcommit_memory', '/proc/sys/kernel/panic'].map((f) => readFileSync(f, 'utf8').trim());
  const machineBefore = machineState();

  before(async () => {
    stateDir = mkdtempSync(join(tmpdir(), 'kind-lab-'));
    const t0 = Date.now();
    lab = await labUp({ stateDir, nodes: 3, labJs, progress });
    progress(`lab up in ${((Date.now() - t0) / 1000).toFixed(1)}s`);
  });

  after(async () => {
    if (stateDir && existsSync(stateDir)) await labDown({ stateDir, progress }).catch(() => undefined);
  });

  it('three kind nodes Ready with real kubelets and containerd, named, labelled, tainted and identified as kind\'s', async () => {
    assert.equal(lab.runtime, 'real');
    const wide = await k(['get', 'nodes', '-o', 'wide']);
    assert.equal(wide.code, 0, wide.stderr);
    for (const n of ['kind-control-plane', 'kind-worker', 'kind-worker2']) assert.match(wide.stdout, new RegExp(`^${n}\\s+Ready\\s.*\\sv1\\.36\\.5\\s+172\\.18\\.0\\.\\d+\\s.*containerd://2\\.`, 'm'));
    const nodes = (await json<{ items: NodeJson[] }>(stateDir, ['get', 'nodes'])).items;
    assert.deepEqual(nodes.map((n) => n.metadata.name), ['kind-control-plane', 'kind-worker', 'kind-worker2']);
    for (const n of nodes) {
      assert.equal(n.spec.providerID, `kind://docker/kind/${n.metadata.name}`);
      assert.equal(n.status.nodeInfo.kubeletVersion, 'v1.36.5');
      assert.match(n.status.nodeInfo.containerRuntimeVersion, /^containerd:\/\/2\./);
      assert.equal(n.metadata.labels['kubernetes.io/hostname'], n.metadata.name);
      const cp = n.metadata.name === 'kind-control-plane';
      assert.equal('node-role.kubernetes.io/control-plane' in n.metadata.labels, cp);
      assert.deepEqual(n.spec.taints ?? [], cp ? [{ key: 'node-role.kubernetes.io/control-plane', effect: 'NoSchedule' }] : []);
    }
    // The control-plane node registered first and got the first pod CIDR, as on kind.
    assert.equal(nodes[0]!.spec.podCIDR, '10.244.0.0/24');
  });

  it('runs kube-proxy and Flannel from its manifest on every node, and nginx with 10 replicas on the workers only', async () => {
    const ds = async (ns: string, name: string) => json<{ spec: { template: { spec: { containers: { image: string }[] } } }; status: { numberReady: number } }>(stateDir, ['-n', ns, 'get', 'ds', name]);
    const flannel = await ds('kube-flannel', 'kube-flannel-ds');
    assert.equal(flannel.status.numberReady, 3);
    assert.equal(flannel.spec.template.spec.containers[0]!.image, 'ghcr.io/flannel-io/flannel:v0.28.10');
    assert.equal((await ds('kube-system', 'kube-proxy')).status.numberReady, 3);
    const cfg = await json<{ data: Record<string, string> }>(stateDir, ['-n', 'kube-flannel', 'get', 'configmap', 'kube-flannel-cfg']);
    assert.equal(JSON.parse(cfg.data['net-conf.json']!).Backend.Type, 'vxlan');
    const pods = (await json<{ items: PodJson[] }>(stateDir, ['get', 'pods', '-l', 'app=nginx'])).items;
    assert.equal(pods.length, 10);
    const perNode = new Map<string, number>();
    for (const p of pods) perNode.set(p.spec.nodeName!, (perNode.get(p.spec.nodeName!) ?? 0) + 1);
    assert.deepEqual([...perNode.keys()].sort(), ['kind-worker', 'kind-worker2']);
    for (const p of pods) assert.ok(p.status.podIP?.startsWith('10.244.'), `${p.metadata.name} has ${p.status.podIP ?? 'no IP'} from Flannel's network`);
  });

  it('runs real Cilium from its chart through helm next to Flannel: agents Ready on every node, the operator gave each a pod CIDR, no node opted in', async () => {
    const release = await new Promise<string>((resolve, reject) => execFile(join(stateDir, 'bin', 'helm'), ['--kubeconfig', statePaths(stateDir).kubeconfig, '-n', 'kube-system', 'list', '-o', 'json'], (err, out) => (err ? reject(err) : resolve(out))));
    assert.deepEqual((JSON.parse(release) as { name: string; status: string; chart: string }[]).map((r) => [r.name, r.status, r.chart]), [['cilium', 'deployed', 'cilium-1.18.3']]);
    const agents = await json<{ spec: { template: { spec: { containers: { image: string }[] } } }; status: { numberReady: number; desiredNumberScheduled: number } }>(stateDir, ['-n', 'kube-system', 'get', 'ds', 'cilium']);
    assert.equal(agents.spec.template.spec.containers[0]!.image, 'quay.io/cilium/cilium:v1.18.3');
    assert.deepEqual([agents.status.desiredNumberScheduled, agents.status.numberReady], [3, 3]);
    const operator = await json<{ status: { readyReplicas?: number } }>(stateDir, ['-n', 'kube-system', 'get', 'deployment', 'cilium-operator']);
    assert.ok((operator.status.readyReplicas ?? 0) >= 1, 'the operator is Ready');
    // `values --phase initial`: no CNI config from Cilium until a node opts in; the overlay on 8473.
    const cfg = await json<{ data: Record<string, string> }>(stateDir, ['-n', 'kube-system', 'get', 'configmap', 'cilium-config']);
    assert.deepEqual([cfg.data['custom-cni-conf'], cfg.data['tunnel-port'], cfg.data['routing-mode'], cfg.data['ipam']], ['true', '8473', 'tunnel', 'cluster-pool']);
    const ciliumNodes = (await json<{ items: { metadata: { name: string }; spec: { ipam?: { podCIDRs?: string[] } } }[] }>(stateDir, ['get', 'ciliumnodes'])).items;
    assert.deepEqual(ciliumNodes.map((n) => n.metadata.name).sort(), ['kind-control-plane', 'kind-worker', 'kind-worker2']);
    for (const n of ciliumNodes) assert.ok(n.spec.ipam?.podCIDRs?.length && n.spec.ipam.podCIDRs.every((c) => cidrContains(ciliumClusterCidr, c.split('/')[0]!)), `${n.metadata.name}: ${n.spec.ipam?.podCIDRs?.join(',')}`);
    // The agent's own view: its datapath loaded and its state Ok.
    const status = await k(['-n', 'kube-system', 'exec', 'ds/cilium', '-c', 'cilium-agent', '--', 'cilium-dbg', 'status', '--brief'], 60_000);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /^OK/m);
    const docker = join(stateDir, 'bin', 'docker');
    for (const n of ['kind-control-plane', 'kind-worker', 'kind-worker2']) {
      assert.deepEqual(execFileSync(docker, ['exec', n, 'ls', '/etc/cni/net.d'], { encoding: 'utf8' }).trim().split('\n'), ['10-flannel.conflist'], `${n} still runs new pods on Flannel`);
    }
  });

  it('nginx answers pods on every node, by pod IP across the VXLAN overlay and through its Service (kube-proxy)', async () => {
    assert.equal((await k(['expose', 'deployment', 'nginx', '--port', '80'])).code, 0);
    const svc = await json<{ spec: { clusterIP: string } }>(stateDir, ['get', 'service', 'nginx']);
    const target = (await nodePods('kind-worker2'))[0]!.status.podIP!;
    for (const n of ['kind-control-plane', 'kind-worker', 'kind-worker2']) {
      // The seed's check, as it is written there (alpine/curl, pulled through the lab's mirror);
      // again until kube-proxy has programmed the new Service on that node (a second or so).
      let attempt = 0;
      await eventually(`nginx answering a pod on ${n} by pod IP and Service`, async () => {
        const r = await k(['run', '--attach', '--rm', '--restart=Never', `verify-${n}-${attempt++}`, `--overrides=${JSON.stringify({ spec: { nodeName: n, tolerations: [{ operator: 'Exists' }] } })}`,
          '--image', 'alpine/curl', '--env', `NGINX=${target}`, '--env', `SVC=${svc.spec.clusterIP}`, '--', '/bin/sh', '-c',
          'for url in $NGINX $SVC; do curl -sf --max-time 5 $url | grep -q "<title>Welcome to nginx!</title>" && echo "$url answered"; done'], 120_000);
        if (r.code !== 0) throw new Error(`from ${n}: exit ${r.code}: ${r.stdout} ${r.stderr.split('\n').slice(-3).join(' ')}`);
        assert.match(r.stdout, new RegExp(`^${target} answered\n${svc.spec.clusterIP} answered\n`, 'm'), `from ${n}: ${r.stdout}`);
        return true;
      }, 90_000, 2000);
    }
  });

  it('a node is a machine of its own: docker exec sees its hostname, CNI config and boot ID; the sysctls kubelet set stayed inside it', async () => {
    const docker = join(stateDir, 'bin', 'docker');
    const inNode = execFileSync(docker, ['exec', 'kind-worker2', 'sh', '-c', 'hostname; ls /etc/cni/net.d; for f in kernel/random/boot_id vm/overcommit_memory kernel/panic; do echo "$(cat /proc/sys/$f)"; done'], { encoding: 'utf8' }).split('\n');
    assert.deepEqual(inNode.slice(0, 2), ['kind-worker2', '10-flannel.conflist']);
    assert.equal(inNode[2], (await node('kind-worker2')).status.nodeInfo.bootID);
    assert.notEqual(inNode[2], readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim());
    // kubelet wants vm.overcommit_memory=1 and kernel.panic=10: the node has them, the machine kept its own.
    assert.deepEqual(inNode.slice(3, 5), ['1', '10']);
    assert.deepEqual([readFileSync('/proc/sys/vm/overcommit_memory', 'utf8').trim(), readFileSync('/proc/sys/kernel/panic', 'utf8').trim()], machineSysctls);
    assert.throws(() => execFileSync(docker, ['exec', 'kind-worker9', 'true'], { stdio: 'pipe' }), /No such container: kind-worker9/);
  });

  it('kubectl logs and exec reach the pods through their kubelet', async () => {
    const logs = await k(['-n', 'kube-flannel', 'logs', 'ds/kube-flannel-ds', '--tail', '200']);
    assert.equal(logs.code, 0, logs.stderr);
    assert.match(logs.stdout, /vxlan|subnet/i);
    const pod = (await nodePods('kind-worker'))[0]!;
    const exec = await k(['exec', pod.metadata.name, '--', 'sh', '-c', 'hostname; ip -4 -o addr show eth0']);
    assert.equal(exec.code, 0, exec.stderr);
    assert.match(exec.stdout, new RegExp(`^${pod.metadata.name}\\n.*inet ${pod.status.podIP!.replace(/\./g, '\\.')}/24`));
  });

  it('restart-node does what docker restart does to a kind node: same bootID and pod UIDs, containers restarted with new IPs, SandboxChanged and Starting', async () => {
    const name = 'kind-worker';
    const bootBefore = (await node(name)).status.nodeInfo.bootID;
    const podsBefore = await nodePods(name);
    const requested = Date.now();
    const r = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => execFile(process.execPath, [labJs, '--state-dir', stateDir, 'restart-node', name], { timeout: 300_000 }, (err, stdout, stderr) => resolve({ code: err ? 1 : 0, stdout, stderr })));
    assert.equal(r.code, 0, r.stderr);
    const podsAfter = await eventually('every nginx pod on kind-worker restarted and Ready', async () => {
      const pods = await nodePods(name);
      return pods.length === podsBefore.length && pods.every((p) => p.status.containerStatuses?.[0]?.ready && p.status.containerStatuses[0].restartCount > 0) ? pods : undefined;
    }, 180_000, 1000);
    assert.equal((await node(name)).status.nodeInfo.bootID, bootBefore, 'bootID unchanged');
    assert.deepEqual(podsAfter.map((p) => p.metadata.uid).sort(), podsBefore.map((p) => p.metadata.uid).sort(), 'pod UIDs unchanged');
    for (const p of podsAfter) {
      const was = podsBefore.find((b) => b.metadata.uid === p.metadata.uid)!;
      assert.equal(p.status.containerStatuses![0]!.restartCount, was.status.containerStatuses![0]!.restartCount + 1, `${p.metadata.name} restartCount +1`);
      assert.notEqual(p.status.podIP, was.status.podIP, `${p.metadata.name} has a new IP`);
      assert.notEqual(p.status.containerStatuses![0]!.containerID, was.status.containerStatuses![0]!.containerID);
    }
    const sandbox = await eventually('SandboxChanged events', async () => {
      const e = (await events('reason=SandboxChanged')).filter((x) => podsBefore.some((p) => p.metadata.name === x.involvedObject.name));
      return e.length === podsBefore.length ? e : undefined;
    }, 60_000, 1000);
    assert.equal(sandbox.length, podsBefore.length);
    const starting = (await events(`involvedObject.kind=Node,involvedObject.name=${name},reason=Starting`)).filter((e) => e.source?.component === 'kubelet' && Date.parse(e.lastTimestamp ?? '') >= Math.floor(requested / 1000) * 1000);
    assert.equal(starting.length, 1, 'one Starting event from the new kubelet');
  });

  describe('the engine\'s restart methods on real kubelets', () => {
    let cluster: ReturnType<typeof kubeEngineCluster>;
    // The plugin finds `docker` on PATH: the lab's, first.
    const withLabPath: CommandRunner = (argv, timeoutMs) => new Promise((resolve) => {
      execFile(argv[0]!, argv.slice(1), { timeout: timeoutMs, env: { ...process.env, PATH: `${join(stateDir, 'bin')}:${process.env.PATH ?? ''}` } }, (err, stdout, stderr) => {
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 127) : 0, stdout, stderr });
      });
    });
    before(() => {
      cluster = kubeEngineCluster(connect({ kubeconfig: statePaths(stateDir).kubeconfig }));
    });

    /** Requests a restart of `name` and polls both rules until the method's completes; returns what the reboot rule said meanwhile. */
    async function restartAndWatch(restarter: NodeRestarter, name: string, extraWatchMs: number) {
      const requestedAt = new Date();
      const baseline = restartBaseline(await cluster.getNode(name), await cluster.listNodePods(name), requestedAt);
      await restarter.request(await cluster.getNode(name), `kind-lab-${restarter.method}-${Date.now()}`);
      const started = Date.now();
      const rebootRule: (string | undefined)[] = [];
      const how = await eventually(`${name} back from --restart ${restarter.method}`, async () => {
        const o = await observeRestart(restarter, cluster, name);
        rebootRule.push(rebootCompletion(baseline, o.node, o.pods));
        return restartCompletion(restarter.method, baseline, o);
      }, 240_000, 1000);
      const took = Date.now() - started;
      // The old rule keeps being asked for a while after the node is back: it must stay silent.
      const watchUntil = Date.now() + extraWatchMs;
      while (Date.now() < watchUntil) {
        const o = await observeRestart(restarter, cluster, name);
        rebootRule.push(rebootCompletion(baseline, o.node, o.pods));
        await new Promise((r) => setTimeout(r, 2000));
      }
      return { how, took, rebootRule, baseline };
    }

    it('--restart kind: docker restart through the lab\'s docker; complete by the container\'s start and kubelet\'s, where the earlier rule never completes', async () => {
      const name = 'kind-worker2';
      const restarter = kindRestarter(withLabPath);
      const r = await restartAndWatch(restarter, name, 45_000);
      assert.match(r.how, /its container started at .* and (kubelet announced its start|its DaemonSet pods restarted)/);
      assert.ok(r.took < 120_000, `back within 2 minutes (took ${r.took} ms)`);
      // The rule every method used before this change (bootID, or Ready again with new DaemonSet
      // pods) saw nothing it waits for, then and for 45 s after: it would have timed out.
      assert.deepEqual([...new Set(r.rebootRule)], [undefined]);
      assert.equal((await cluster.getNode(name)).bootID, r.baseline.bootID);
    });

    it('--restart reboot: the privileged pod\'s `nsenter -t 1 ... systemctl reboot` reboots its node (new bootID, Rebooted event)', async () => {
      const name = 'kind-worker';
      const restarter = rebootRestarter(cluster, 'default', labHostCommandImage);
      const r = await restartAndWatch(restarter, name, 0);
      assert.match(r.how, /bootID changed/);
      assert.notEqual((await cluster.getNode(name)).bootID, r.baseline.bootID);
      const rebooted = await events(`involvedObject.kind=Node,involvedObject.name=${name},reason=Rebooted`);
      assert.ok(rebooted.length >= 1, 'kubelet recorded Rebooted');
    });

    it('--restart exec with `lab reboot-node {node}`: a new bootID', async () => {
      const name = 'kind-control-plane';
      const restarter = execRestarter(`${process.execPath} ${labJs} --state-dir ${stateDir} reboot-node {node}`);
      const r = await restartAndWatch(restarter, name, 0);
      assert.match(r.how, /bootID changed/);
    });
  });

  it('`node kind-worker --restart kind` moves kind-worker to real Cilium: a new pod there gets a Cilium IP and reaches a Flannel pod, which reaches it back', async () => {
    const name = 'kind-worker';
    // The tests above restarted and rebooted nodes: their agents compile and load the datapath
    // again before they are Ready (the plugin's baseline gate refuses to start until they are).
    await eventually('a Ready Cilium agent on every node', async () => {
      const ds = await json<{ status: { numberReady?: number; updatedNumberScheduled?: number } }>(stateDir, ['-n', 'kube-system', 'get', 'ds', 'cilium']);
      return ds.status.numberReady === 3 ? true : undefined;
    }, 300_000, 2000);
    const plugin = pluginPathDir();
    try {
      const prepare = await inPluginPath(plugin.dir, ['cilium-migrate', 'prepare'], 60_000);
      assert.equal(prepare.code, 0, prepare.stderr);
      // The seed's step with the plugin's defaults (--restart kind through the lab's docker); the
      // gate from the cluster's state, the lab running no probe agents.
      const r = await inPluginPath(plugin.dir, ['cilium-migrate', 'node', name, '--gate', 'cluster-state', '--gate-interval', '2s'], 600_000);
      assert.equal(r.code, 0, `node ${name}:\n${r.stdout}\n${r.stderr}`);
      assert.match(r.stdout, /restart-node\s+applied\s+restarted \(kind\): its container started at/);
      assert.match(r.stdout, /verify\s+applied\s+a new pod got 10\.245\./);
      assert.match(r.stdout, new RegExp(`^${name}: migrated$`, 'm'));
    } finally {
      plugin.dispose();
    }
    const n = await node(name);
    assert.equal(n.metadata.labels['io.cilium.migration/cilium-default'], 'true');
    assert.equal((await json<{ spec: { unschedulable?: boolean } }>(stateDir, ['get', 'node', name])).spec.unschedulable, undefined, 'uncordoned');
    const docker = join(stateDir, 'bin', 'docker');
    assert.deepEqual(execFileSync(docker, ['exec', name, 'ls', '/etc/cni/net.d'], { encoding: 'utf8' }).trim().split('\n'), ['05-cilium.conflist', '10-flannel.conflist.cilium_bak']);
    const ciliumCidr = (await json<{ spec: { ipam: { podCIDRs: string[] } } }>(stateDir, ['get', 'ciliumnode', name])).spec.ipam.podCIDRs[0]!;

    // A server on the migrated node, one on Flannel's kind-worker2; each side curls the other.
    const serve = (pod: string, on: string) => k(['run', pod, '--image', 'nginx', '--port', '80', `--overrides=${JSON.stringify({ spec: { nodeName: on } })}`]);
    assert.equal((await serve('on-cilium', name)).code, 0);
    assert.equal((await serve('on-flannel', 'kind-worker2')).code, 0);
    const ready = await k(['wait', '--for=condition=Ready', 'pod/on-cilium', 'pod/on-flannel', '--timeout=120s'], 130_000);
    assert.equal(ready.code, 0, ready.stderr);
    const ip = async (pod: string) => (await json<PodJson>(stateDir, ['get', 'pod', pod])).status.podIP!;
    const [ciliumIp, flannelIp] = [await ip('on-cilium'), await ip('on-flannel')];
    assert.ok(cidrContains(ciliumCidr, ciliumIp), `on-cilium has ${ciliumIp}, inside ${name}'s Cilium CIDR ${ciliumCidr}`);
    assert.ok(cidrContains('10.244.0.0/16', flannelIp), `on-flannel has ${flannelIp} from Flannel`);
    const curl = async (from: string, to: string) => {
      const c = await k(['exec', from, '--', 'curl', '-s', '--max-time', '5', '-o', '/dev/null', '-w', '%{http_code} %{remote_ip}', `http://${to}/`], 30_000);
      return `${c.stdout}${c.code === 0 ? '' : ` (exit ${c.code}: ${c.stderr.trim()})`}`;
    };
    // Cilium's VXLAN (8473) to Flannel's (8472) through the nodes' routes, both ways.
    assert.equal(await eventually(`${ciliumIp} reaching ${flannelIp}`, async () => ((await curl('on-cilium', flannelIp)) === `200 ${flannelIp}` ? `200 ${flannelIp}` : undefined), 60_000, 2000), `200 ${flannelIp}`);
    assert.equal(await curl('on-flannel', ciliumIp), `200 ${ciliumIp}`);
    assert.equal(await curl('on-cilium', flannelIp), `200 ${flannelIp}`);
    assert.equal((await k(['delete', 'pod', 'on-cilium', 'on-flannel', '--wait=false'])).code, 0);
  });

  it('`rollback kind-worker` returns it to Flannel: files restored while its agent applies the node config are renamed back at once (the earlier order); after the agent restart they hold, and a new pod gets a Flannel address and reaches a pod on Cilium and back', async (t) => {
    const name = 'kind-worker';
    const note = (line: string) => (progress(line), t.diagnostic(line));
    const other = 'kind-worker2';
    const docker = join(stateDir, 'bin', 'docker');
    const sh = (on: string, script: string) => execFileSync(docker, ['exec', on, 'sh', '-c', script], { encoding: 'utf8' });
    const cniFiles = (on: string) => sh(on, 'ls /etc/cni/net.d').trim().split('\n');
    const agentOn = async (on: string) => (await json<{ items: PodJson[] }>(stateDir, ['-n', 'kube-system', 'get', 'pods', '-l', 'k8s-app=cilium', '--field-selector', `spec.nodeName=${on}`])).items.map((p) => p.metadata.name);
    const ip = async (pod: string) => (await json<PodJson>(stateDir, ['get', 'pod', pod])).status.podIP!;
    const runPod = async (pod: string, on: string, image = 'nginx') => {
      assert.equal((await k(['run', pod, '--image', image, '--port', '80', `--overrides=${JSON.stringify({ spec: { nodeName: on } })}`])).code, 0);
      const ready = await k(['wait', '--for=condition=Ready', `pod/${pod}`, '--timeout=120s'], 130_000);
      assert.equal(ready.code, 0, ready.stderr);
      return ip(pod);
    };
    const ciliumCidr = (await json<{ spec: { ipam: { podCIDRs: string[] } } }>(stateDir, ['get', 'ciliumnode', name])).spec.ipam.podCIDRs[0]!;
    const flannelCidr = (await node(name)).spec.podCIDR!;
    const t0 = Date.now();

    // The earlier order: the label goes, then the files are restored as restore-cni does, while the
    // agent that applied the node config at its start still runs.
    assert.deepEqual(cniFiles(name), ['05-cilium.conflist', '10-flannel.conflist.cilium_bak']);
    const [agent] = await agentOn(name);
    assert.equal((await k(['label', 'node', name, 'io.cilium.migration/cilium-default-'])).code, 0);
    const restoredAt = new Date(Date.now() - 1000).toISOString().replace(/\.\d+Z$/, 'Z');
    sh(name, restoreLegacyCniScript);
    const restored = Date.now();
    const restoreStartSecond = Math.floor(Date.parse(restoredAt) / 1000);
    const undone = await eventually('the agent to put its config back and rename Flannel\'s away', async () => {
      const files = cniFiles(name);
      return files.includes('05-cilium.conflist') && !files.includes('10-flannel.conflist') ? files : undefined;
    }, 30_000, 250);
    const undoneMs = Date.now() - restored;
    assert.deepEqual(undone, ['05-cilium.conflist', '10-flannel.conflist.cilium_bak']);
    // Written again after the restore deleted it (its change time; an inode number can be reused).
    const changed = Number(sh(name, 'stat -c %Z /etc/cni/net.d/05-cilium.conflist').trim());
    assert.ok(changed >= restoreStartSecond, `the agent wrote 05-cilium.conflist again after the restore deleted it (changed at ${changed}, restore at ${restoreStartSecond})`);
    const agentLog = await k(['-n', 'kube-system', 'logs', agent!, '-c', 'cilium-agent', `--since-time=${restoredAt}`]);
    assert.match(agentLog.stdout, /Renaming non-Cilium CNI configuration file.*10-flannel\.conflist/);
    // What a node restart after that restore gives: new pods on Cilium, not Flannel.
    const stillCilium = await runPod('after-early-restore', name, 'registry.k8s.io/pause:3.10');
    assert.ok(cidrContains(ciliumCidr, stillCilium), `a new pod on ${name} after the early restore got ${stillCilium}, inside its Cilium CIDR ${ciliumCidr}`);
    assert.equal((await k(['delete', 'pod', 'after-early-restore', '--wait=true'], 90_000)).code, 0);
    note(`the earlier order's restore undone by the agent in ${undoneMs} ms`);

    // A pod on Cilium to reach: kind-worker2 migrated too, without a node restart (a new pod gets
    // Cilium's address as soon as its new agent wrote 05-cilium.conflist).
    const plugin = pluginPathDir();
    try {
      const tMigrate = Date.now();
      const m = await inPluginPath(plugin.dir, ['cilium-migrate', 'node', other, '--restart', 'none', '--gate', 'cluster-state', '--gate-interval', '2s'], 600_000);
      assert.equal(m.code, 0, `node ${other}:\n${m.stdout}\n${m.stderr}`);
      const tRollback = Date.now();
      note(`node ${other} --restart none in ${((tRollback - tMigrate) / 1000).toFixed(1)}s`);
      const r = await inPluginPath(plugin.dir, ['cilium-migrate', 'rollback', name, '--host-image', labHostCommandImage], 600_000);
      assert.equal(r.code, 0, `rollback ${name}:\n${r.stdout}\n${r.stderr}`);
      note(`rollback ${name} in ${((Date.now() - tRollback) / 1000).toFixed(1)}s:`);
      for (const line of r.stdout.trimEnd().split('\n')) note(line);
      const order = [...r.stdout.matchAll(/^\s*(cordon|drain|unlabel|restart-agent|restore-cni|restart-node|verify|uncordon)\s+(applied|not-needed)/gm)].map((x) => x[1]);
      assert.deepEqual(order, ['cordon', 'drain', 'unlabel', 'restart-agent', 'restore-cni', 'restart-node', 'verify', 'uncordon'], r.stdout);
      assert.match(r.stdout, /restart-node\s+applied\s+restarted \(kind\): its container started at/);
      assert.match(r.stdout, /verify\s+applied\s+a new pod got 10\.244\./);
      assert.match(r.stdout, new RegExp(`^${name}: rolled back to the legacy CNI$`, 'm'));
    } finally {
      plugin.dispose();
    }
    assert.deepEqual(cniFiles(name), ['10-flannel.conflist'], 'Flannel\'s config restored and Cilium\'s gone, after the node restart too');
    const back = await node(name);
    assert.equal(back.metadata.labels['io.cilium.migration/cilium-default'], undefined);

    // A new pod on the rolled-back node is on Flannel and reaches a pod on Cilium, which reaches it back.
    const otherCidr = (await json<{ spec: { ipam: { podCIDRs: string[] } } }>(stateDir, ['get', 'ciliumnode', other])).spec.ipam.podCIDRs[0]!;
    const [flannelIp, ciliumIp] = [await runPod('back-on-flannel', name), await runPod('on-cilium2', other)];
    assert.ok(cidrContains(flannelCidr, flannelIp) && cidrContains('10.244.0.0/16', flannelIp), `back-on-flannel has ${flannelIp}, inside ${name}'s Flannel subnet ${flannelCidr}`);
    assert.ok(cidrContains(otherCidr, ciliumIp), `on-cilium2 has ${ciliumIp}, inside ${other}'s Cilium CIDR ${otherCidr}`);
    const curl = async (from: string, to: string) => {
      const c = await k(['exec', from, '--', 'curl', '-s', '--max-time', '5', '-o', '/dev/null', '-w', '%{http_code} %{remote_ip}', `http://${to}/`], 30_000);
      return `${c.stdout}${c.code === 0 ? '' : ` (exit ${c.code}: ${c.stderr.trim()})`}`;
    };
    assert.equal(await eventually(`${flannelIp} reaching ${ciliumIp}`, async () => ((await curl('back-on-flannel', ciliumIp)) === `200 ${ciliumIp}` ? `200 ${ciliumIp}` : undefined), 60_000, 2000), `200 ${ciliumIp}`);
    assert.equal(await curl('on-cilium2', flannelIp), `200 ${flannelIp}`);
    assert.equal((await k(['delete', 'pod', 'back-on-flannel', 'on-cilium2', '--wait=false'])).code, 0);
    note(`rollback test in ${((Date.now() - t0) / 1000).toFixed(1)}s`);
  });

  it('lab down leaves no process, namespace, mount, cgroup or file', async () => {
    const status = await labStatus(stateDir);
    const prefix = status.prefix!;
    const pidNs = nodePidNamespaces(stateDir, status.nodes.map((n) => n.name));
    assert.equal(traces(prefix, stateDir, pidNs).netns.length, 5, 'while up: the underlay, the control plane and three nodes');
    await labDown({ stateDir, progress });
    assert.deepEqual(traces(prefix, stateDir, pidNs), noTraces);
    // The machine's own sysctls the agents and kubelets write, its bpffs and cgroup2 mounts (none
    // of the nodes' own leaked out) and the host paths the chart names: as before the lab.
    assert.deepEqual(machineState(), machineBefore);
  });
});

describe('the real-node lab with five nodes, SIGKILLed', () => {
  it('brings up --nodes 5 Ready, and after a SIGKILL of its daemon lab down (the reaper) leaves nothing', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'kind-lab5-'));
    try {
      const lab = await labUp({ stateDir, nodes: 5, labJs, progress: () => {} });
      assert.deepEqual(lab.nodes.map((n) => n.name), ['kind-control-plane', 'kind-worker', 'kind-worker2', 'kind-worker3', 'kind-worker4']);
      const nodes = (await json<{ items: NodeJson[] }>(stateDir, ['get', 'nodes'])).items;
      assert.equal(nodes.filter((n) => n.status.conditions.some((c) => c.type === 'Ready' && c.status === 'True')).length, 5);
      const pidNs = nodePidNamespaces(stateDir, lab.nodes.map((n) => n.name));
      process.kill(lab.pid, 'SIGKILL');
      await eventually('the lab daemon gone', async () => {
        try {
          process.kill(lab.pid, 0);
          return undefined;
        } catch {
          return true;
        }
      }, 10_000);
      // Every process of the nodes died with the daemon (parent-death signals, PID namespaces).
      await eventually('no process of the nodes', async () => (traces(lab.prefix!, stateDir, pidNs).processes.length === 0 ? true : undefined), 30_000);
      assert.ok(traces(lab.prefix!, stateDir, pidNs).netns.length > 0, 'the SIGKILLed daemon could not remove its namespaces');
      await labDown({ stateDir, progress: () => {} });
      assert.deepEqual(traces(lab.prefix!, stateDir, pidNs), noTraces);
    } finally {
      if (existsSync(stateDir)) await labDown({ stateDir, progress: () => {} }).catch(() => undefined);
    }
  });
});

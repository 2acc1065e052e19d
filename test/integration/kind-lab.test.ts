// The real-node lab end to end: `lab up` brings up kind's three nodes with real kubelets and
// containerd, kube-proxy and Flannel from its manifest, and nginx as the seed deploys it; pods on
// every node reach it; kubectl logs, exec and the seed's `kubectl run --attach --rm` work; a node
// restarted as `docker restart` does it shows what it shows on kind; the engine's restart methods
// complete on real kubelets by the signals each really changes; `lab down`, and the reaper after a
// SIGKILL of the lab, leave nothing behind.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { kubeEngineCluster } from '../../cmd/cluster/kube-cluster.js';
import { execRestarter, kindRestarter, observeRestart, rebootCompletion, rebootRestarter, restartBaseline, restartCompletion, type CommandRunner, type NodeRestarter } from '../../cmd/engine/restart.js';
import { connect } from '../../lib/kube.js';
import { labDown, labStatus, labUp } from '../../lab/cli.js';
import { defaultBinDir } from '../../lab/control-plane.js';
import { statePaths, type LabStatus } from '../../lab/daemon.js';
import { labHostCommandImage } from '../../lab/images/catalog.js';
import { hierarchies, listNetns, ownerRecords } from '../../lab/node/lab-resources.js';
import { eventually } from '../harness/wait.js';
import { repoRoot } from '../harness/plugin.js';

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
  const nodePods = async (node: string, selector = 'app=nginx') => (await json<{ items: PodJson[] }>(stateDir, ['get', 'pods', '-A', '-l', selector, '--field-selector', `spec.nodeName=${node}`])).items;
  const node = async (name: string) => json<NodeJson>(stateDir, ['get', 'node', name]);
  const events = async (fieldSelector: string) => (await json<{ items: { reason: string; source?: { component?: string }; lastTimestamp?: string; eventTime?: string; involvedObject: { name: string } }[] }>(stateDir, ['get', 'events', '-A', '--field-selector', fieldSelector])).items;

  // The machine's own values of two sysctls kubelet sets differently, read before any node runs.
  const machineSysctls = ['/proc/sys/vm/overcommit_memory', '/proc/sys/kernel/panic'].map((f) => readFileSync(f, 'utf8').trim());

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

  it('lab down leaves no process, namespace, mount, cgroup or file', async () => {
    const status = await labStatus(stateDir);
    const prefix = status.prefix!;
    const pidNs = nodePidNamespaces(stateDir, status.nodes.map((n) => n.name));
    assert.equal(traces(prefix, stateDir, pidNs).netns.length, 5, 'while up: the underlay, the control plane and three nodes');
    await labDown({ stateDir, progress });
    assert.deepEqual(traces(prefix, stateDir, pidNs), noTraces);
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

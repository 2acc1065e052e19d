// The real-node lab with Calico as the legacy CNI (`lab up --legacy calico`): calico-node, its CNI
// plugin and kube-controllers built from the projectcalico/calico module (v3.31.0), installed from
// the module's calico-vxlan.yaml (Kubernetes datastore, VXLAN Always on 4789, pool 192.168.0.0/16).
// Pods get Calico addresses and reach each other across nodes through vxlan.calico; real Cilium in
// migration mode runs next to it; `status` counts Calico's pods as legacy; `node kind-worker`
// moves that node to Cilium, and its new pods reach Calico's on other nodes and back.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cidrContains } from '../../lib/cidr.js';
import { ciliumClusterCidr } from '../../lib/defaults.js';
import { labDown, labUp } from '../../lab/cli.js';
import { defaultBinDir } from '../../lab/control-plane.js';
import { statePaths } from '../../lab/daemon.js';
import { eventually } from '../harness/wait.js';
import { pluginPathDir, repoRoot } from '../harness/plugin.js';

const labJs = join(repoRoot, 'dist', 'lab.js');
const kubectlBin = join(defaultBinDir(), 'kubectl');
const calicoPool = '192.168.0.0/16';

interface PodJson {
  metadata: { name: string };
  spec: { nodeName?: string; hostNetwork?: boolean };
  status: { podIP?: string; phase?: string };
}

describe('the real-node lab with Calico (--legacy calico)', () => {
  let stateDir: string;
  const log: string[] = [];
  const progress = (line: string) => log.push(line);
  const run = (args: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}) => new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(kubectlBin, args, { timeout: opts.timeoutMs ?? 120_000, maxBuffer: 32 * 1024 * 1024, env: { ...process.env, KUBECONFIG: statePaths(stateDir).kubeconfig, ...opts.env } }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
  const k = (args: string[], timeoutMs?: number) => run(args, { timeoutMs });
  const json = async <T>(args: string[]): Promise<T> => {
    const r = await k([...args, '-o', 'json']);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
    return JSON.parse(r.stdout) as T;
  };
  const plugin = (dir: string, args: string[], timeoutMs = 600_000) => run(['cilium-migrate', ...args], { timeoutMs, env: { PATH: `${dir}:${join(stateDir, 'bin')}:${process.env.PATH ?? ''}` } });
  const sh = (node: string, script: string) => execFileSync(join(stateDir, 'bin', 'docker'), ['exec', node, 'sh', '-c', script], { encoding: 'utf8' });
  const ip = async (pod: string) => (await json<PodJson>(['get', 'pod', pod])).status.podIP!;
  const serve = async (pod: string, on: string) => {
    assert.equal((await k(['run', pod, '--image', 'nginx', '--port', '80', `--overrides=${JSON.stringify({ spec: { nodeName: on } })}`])).code, 0);
  };
  const curl = async (from: string, to: string) => {
    const c = await k(['exec', from, '--', 'curl', '-s', '--max-time', '5', '-o', '/dev/null', '-w', '%{http_code} %{remote_ip}', `http://${to}/`], 30_000);
    return `${c.stdout}${c.code === 0 ? '' : ` (exit ${c.code}: ${c.stderr.trim()})`}`;
  };
  const reaches = (from: string, to: string) => eventually(`${from} reaching ${to}`, async () => ((await curl(from, to)) === `200 ${to}` ? `200 ${to}` : undefined), 60_000, 2000);
  const vxlanTx = (node: string) => Number(/TX:[^\n]*\n\s*\d+\s+(\d+)/.exec(sh(node, 'ip -s link show vxlan.calico'))?.[1] ?? NaN);

  before(async () => {
    stateDir = mkdtempSync(join(tmpdir(), 'calico-lab-'));
    const t0 = Date.now();
    await labUp({ stateDir, nodes: 3, legacy: 'calico', labJs, progress });
    progress(`lab up in ${((Date.now() - t0) / 1000).toFixed(1)}s`);
  });

  after(async () => {
    if (stateDir && existsSync(stateDir)) await labDown({ stateDir, progress }).catch(() => undefined);
  });

  it('runs calico-node (VXLAN, Kubernetes datastore) from its manifest on every node: pool 192.168.0.0/16 with VXLAN Always, vxlan.calico on 4789, 10-calico.conflist, nginx pods on Calico addresses', async () => {
    const ds = await json<{ status: { numberReady: number; desiredNumberScheduled: number } }>(['-n', 'kube-system', 'get', 'daemonset', 'calico-node']);
    assert.equal(ds.status.numberReady, 3);
    const pools = (await json<{ items: { metadata: { name: string }; spec: { cidr: string; vxlanMode: string; ipipMode: string } }[] }>(['get', 'ippools.crd.projectcalico.org'])).items;
    assert.deepEqual(pools.map((p) => [p.spec.cidr, p.spec.vxlanMode, p.spec.ipipMode]), [[calicoPool, 'Always', 'Never']]);
    for (const n of ['kind-control-plane', 'kind-worker', 'kind-worker2']) {
      assert.match(sh(n, 'ip -d link show vxlan.calico'), /vxlan id 4096 .*dstport 4789/, `${n} has Calico's VXLAN device`);
      const files = sh(n, 'ls /etc/cni/net.d').trim().split('\n');
      assert.deepEqual(files, ['10-calico.conflist', 'calico-kubeconfig'], `${n}: Calico's CNI config only (Cilium's customConf leaves it alone)`);
    }
    const nginx = (await json<{ items: PodJson[] }>(['get', 'pods', '-l', 'app=nginx'])).items;
    assert.ok(nginx.length > 0);
    for (const p of nginx) assert.ok(p.status.podIP && cidrContains(calicoPool, p.status.podIP), `${p.metadata.name} has ${p.status.podIP}, from Calico's pool`);
  });

  it('pods on different nodes talk over Calico\'s VXLAN: the route goes through vxlan.calico and its counters move', async () => {
    await serve('calico-a', 'kind-worker');
    await serve('calico-b', 'kind-worker2');
    assert.equal((await k(['wait', '--for=condition=Ready', 'pod/calico-a', 'pod/calico-b', '--timeout=120s'], 130_000)).code, 0);
    const [a, b] = [await ip('calico-a'), await ip('calico-b')];
    assert.ok(cidrContains(calicoPool, a) && cidrContains(calicoPool, b), `${a} ${b}`);
    assert.match(sh('kind-worker', `ip route get ${b}`), /dev vxlan\.calico/);
    const before = vxlanTx('kind-worker');
    assert.equal(await reaches('calico-a', b), `200 ${b}`);
    assert.equal(await curl('calico-b', a), `200 ${a}`);
    assert.ok(vxlanTx('kind-worker') > before, 'packets left kind-worker through vxlan.calico');
    // Bare pods: the migration's drain would (rightly) refuse to evict them.
    assert.equal((await k(['delete', 'pod', 'calico-a', 'calico-b', '--wait=true'], 90_000)).code, 0);
  });

  it('runs Cilium in migration mode next to Calico: agents Ready, every node has a Cilium pod CIDR, none opted in', async () => {
    const ds = await json<{ status: { numberReady: number } }>(['-n', 'kube-system', 'get', 'daemonset', 'cilium']);
    assert.equal(ds.status.numberReady, 3);
    const ciliumNodes = (await json<{ items: { spec: { ipam?: { podCIDRs?: string[] } } }[] }>(['get', 'ciliumnodes'])).items;
    assert.equal(ciliumNodes.length, 3);
    for (const n of ciliumNodes) assert.ok(n.spec.ipam?.podCIDRs?.every((c) => cidrContains(ciliumClusterCidr, c.split('/')[0]!)));
  });

  it('status counts Calico\'s pods as legacy; `node kind-worker` moves it to Cilium, and its new pod reaches a Calico pod on kind-worker2 and back', async () => {
    const name = 'kind-worker';
    const dir = pluginPathDir();
    try {
      const st = await plugin(dir.dir, ['status', '-o', 'json'], 60_000);
      assert.equal(st.code, 0, st.stderr);
      const status = JSON.parse(st.stdout) as { nodes: { node: string; pods: { legacy: number; cilium: number } }[]; summary: { podsOnLegacy: number } };
      const pods = (await json<{ items: PodJson[] }>(['get', 'pods', '-A'])).items.filter((p) => !p.spec.hostNetwork && p.status.podIP);
      assert.ok(pods.every((p) => cidrContains(calicoPool, p.status.podIP!)), 'every pod network pod is on Calico before the migration');
      for (const n of status.nodes) {
        assert.equal(n.pods.legacy, pods.filter((p) => p.spec.nodeName === n.node).length, `${n.node}: ${JSON.stringify(n.pods)}`);
        assert.equal(n.pods.cilium, 0);
      }
      assert.equal(status.summary.podsOnLegacy, pods.length);

      const prepare = await plugin(dir.dir, ['prepare'], 60_000);
      assert.equal(prepare.code, 0, prepare.stderr);
      const r = await plugin(dir.dir, ['node', name, '--gate', 'cluster-state', '--gate-interval', '2s']);
      assert.equal(r.code, 0, `node ${name}:\n${r.stdout}\n${r.stderr}`);
      assert.match(r.stdout, /verify\s+applied\s+a new pod got 10\.245\./);
      assert.match(r.stdout, new RegExp(`^${name}: migrated$`, 'm'));
    } finally {
      dir.dispose();
    }
    const files = sh(name, 'ls /etc/cni/net.d').trim().split('\n');
    assert.ok(files.includes('05-cilium.conflist') && files.includes('10-calico.conflist.cilium_bak'), files.join(' '));
    const ciliumCidr = (await json<{ spec: { ipam: { podCIDRs: string[] } } }>(['get', 'ciliumnode', name])).spec.ipam.podCIDRs[0]!;

    await serve('on-cilium', name);
    await serve('on-calico', 'kind-worker2');
    assert.equal((await k(['wait', '--for=condition=Ready', 'pod/on-cilium', 'pod/on-calico', '--timeout=120s'], 130_000)).code, 0);
    const [ciliumIp, calicoIp] = [await ip('on-cilium'), await ip('on-calico')];
    assert.ok(cidrContains(ciliumCidr, ciliumIp), `on-cilium has ${ciliumIp}, inside ${name}'s Cilium CIDR ${ciliumCidr}`);
    assert.ok(cidrContains(calicoPool, calicoIp), `on-calico has ${calicoIp} from Calico`);
    // Cilium's VXLAN (8473) one way and Calico's (4789) the other, through the nodes' routes.
    assert.equal(await reaches('on-cilium', calicoIp), `200 ${calicoIp}`);
    assert.equal(await reaches('on-calico', ciliumIp), `200 ${ciliumIp}`);
  });
});

// How the engine restarts a node and knows it is back.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { HostCommandPod, NodeView, PodView } from '../../cmd/cluster/cluster.js';
import { hostCommandPodName } from '../../cmd/engine/host-command.js';
import { chooseRestartMethod, execRestarter, kindContainer, kindRestarter, observeRestart, parseRuntimeTime, rebootCompletion, rebootRestarter, restartBaseline, restartCompletion, shellQuote, type CommandRunner } from '../../cmd/engine/restart.js';
import { ExitCode, UsageError } from '../../lib/errors.js';

const t0 = new Date('2026-01-01T00:00:00Z');
const node = (extra: Partial<NodeView> = {}): NodeView => ({
  name: 'kind-worker', uid: 'n1', unschedulable: true, labels: {}, annotations: {}, providerID: 'kind://docker/kind/kind-worker',
  bootID: 'boot-a', ready: true, readySince: new Date(t0.getTime() - 60_000), podCIDRs: ['10.244.1.0/24'], controlPlane: false, ...extra,
});
const dsPod = (name: string, uid: string, ready = true, restarts = 0, containerIds = [`containerd://${name}-${restarts}`]): PodView => ({
  namespace: 'kube-system', name: `${name}-x`, uid, nodeName: 'kind-worker', phase: 'Running', ready, podIP: '172.18.0.3', hostNetwork: true, createdAt: t0, controller: { kind: 'DaemonSet', name },
  restarts, containerIds,
});

describe('chooseRestartMethod', () => {
  it('defaults to kind for kind nodes', () => assert.equal(chooseRestartMethod(undefined, node()), 'kind'));
  it('takes the flag', () => assert.equal(chooseRestartMethod('none', node()), 'none'));
  it('asks for a choice on other nodes instead of guessing', () => {
    assert.throws(() => chooseRestartMethod(undefined, node({ providerID: 'aws:///eu-west-1a/i-123' })), (e: unknown) => e instanceof UsageError && e.exitCode === ExitCode.usage && /cannot guess/.test(e.message));
  });
});

describe('restartCompletion for reboot and exec', () => {
  const before = restartBaseline(node(), [dsPod('cilium', 'c1'), dsPod('kube-proxy', 'k1')], t0);
  const later = new Date(t0.getTime() + 30_000);
  const cases: [string, NodeView, PodView[], RegExp | undefined][] = [
    ['nothing changed yet', node(), [dsPod('cilium', 'c1'), dsPod('kube-proxy', 'k1')], undefined],
    ['a new bootID while Ready', node({ bootID: 'boot-b' }), [dsPod('cilium', 'c1')], /bootID changed/],
    ['a new bootID but not Ready yet', node({ bootID: 'boot-b', ready: false }), [], undefined],
    ['Ready again after the request with every DaemonSet pod replaced', node({ readySince: later }), [dsPod('cilium', 'c2'), dsPod('kube-proxy', 'k2')], /new DaemonSet pods/],
    ['Ready again but one DaemonSet pod is the old one', node({ readySince: later }), [dsPod('cilium', 'c2'), dsPod('kube-proxy', 'k1')], undefined],
    ['Ready again but a new DaemonSet pod is not Ready', node({ readySince: later }), [dsPod('cilium', 'c2'), dsPod('kube-proxy', 'k2', false)], undefined],
    ['new DaemonSet pods but no Ready transition after the request', node(), [dsPod('cilium', 'c2'), dsPod('kube-proxy', 'k2')], undefined],
  ];
  for (const [name, n, pods, expected] of cases) {
    it(name, () => {
      for (const method of ['reboot', 'exec'] as const) {
        const how = restartCompletion(method, before, { node: n, pods });
        if (expected) assert.match(how ?? '', expected);
        else assert.equal(how, undefined);
      }
    });
  }
});

describe('restartCompletion for kind (docker restart keeps the bootID and every pod UID)', () => {
  const before = restartBaseline(node(), [dsPod('cilium', 'c1'), dsPod('kube-proxy', 'k1')], t0);
  const started = new Date(t0.getTime() + 2_000);
  // What docker restart of a kind node leaves: same bootID, same UIDs, Ready all along with its old
  // transition time, every container restarted once.
  const restartedPods = [dsPod('cilium', 'c1', true, 1), dsPod('kube-proxy', 'k1', true, 1)];
  const kubeletEvent = new Date(t0.getTime() + 3_000);
  const heartbeat = new Date(t0.getTime() + 4_000);
  type Case = [string, { container?: Date; kubelet?: Date; ready?: boolean; heartbeat?: Date; pods?: PodView[] }, RegExp | undefined];
  const cases: Case[] = [
    ['nothing changed yet', { pods: [dsPod('cilium', 'c1'), dsPod('kube-proxy', 'k1')] }, undefined],
    ['container restarted and kubelet announced its start', { container: started, kubelet: kubeletEvent, pods: [] }, /container started .*Starting event/],
    ['container restarted and every DaemonSet pod restarted and Ready', { container: started, pods: restartedPods }, /DaemonSet pods restarted/],
    ['container restarted, kubelet not yet back', { container: started, pods: [dsPod('cilium', 'c1'), dsPod('kube-proxy', 'k1')] }, undefined],
    ['container restarted, one DaemonSet pod not Ready again', { container: started, pods: [dsPod('cilium', 'c1', true, 1), dsPod('kube-proxy', 'k1', false, 1)] }, undefined],
    ['a Starting event older than the request', { container: started, kubelet: new Date(t0.getTime() - 5_000), pods: [] }, undefined],
    ['a Starting event in the same second as the request (events carry whole seconds)', { container: started, kubelet: new Date(t0.getTime()), pods: [] }, /Starting event/],
    ['kubelet back but the container did not restart after the request', { container: new Date(t0.getTime() - 1_000), kubelet: kubeletEvent, pods: restartedPods }, undefined],
    ['the runtime cannot say when the container started', { kubelet: kubeletEvent, pods: restartedPods }, undefined],
    ['back but not Ready', { container: started, kubelet: kubeletEvent, ready: false, pods: restartedPods }, undefined],
    ['kubelet announced its start but Ready is still the old kubelet\'s last report', { container: started, kubelet: kubeletEvent, heartbeat: new Date(t0.getTime() - 8_000), pods: restartedPods }, undefined],
    ['a heartbeat in the second the container started (heartbeats carry whole seconds)', { container: new Date(t0.getTime() + 2_400), kubelet: kubeletEvent, heartbeat: new Date(t0.getTime() + 2_000), pods: [] }, /Starting event/],
  ];
  for (const [name, c, expected] of cases) {
    it(name, () => {
      const how = restartCompletion('kind', before, { node: node({ ready: c.ready ?? true, readyHeartbeat: c.heartbeat ?? heartbeat }), pods: c.pods ?? [], containerStartedAt: c.container, kubeletStartedAt: c.kubelet });
      if (expected) assert.match(how ?? '', expected);
      else assert.equal(how, undefined);
    });
  }

  it('is judged on no signal kind leaves unchanged: the reboot rule never completes such a restart', () => {
    // The rule every method used before: it waits for a new bootID or new DaemonSet pod UIDs.
    assert.equal(rebootCompletion(before, node({ readyHeartbeat: heartbeat }), restartedPods), undefined);
    assert.match(restartCompletion('kind', before, { node: node({ readyHeartbeat: heartbeat }), pods: restartedPods, containerStartedAt: started, kubeletStartedAt: kubeletEvent }) ?? '', /container started/);
  });
});

describe('kind nodes: runtime, container and start time', () => {
  it('takes the runtime and container from the providerID', () => {
    assert.deepEqual(kindContainer(node({ providerID: 'kind://podman/kind/kind-worker2' })), { runtime: 'podman', container: 'kind-worker2' });
    assert.deepEqual(kindContainer(node({ providerID: 'kind://docker/dev/dev-worker' })), { runtime: 'docker', container: 'dev-worker' });
    assert.deepEqual(kindContainer(node({ providerID: '' })), { runtime: 'docker', container: 'kind-worker' });
  });

  it('reads docker and podman times, and not their zero time', () => {
    assert.equal(parseRuntimeTime('2026-11-25T16:24:19.138123456Z\n')?.toISOString(), '2026-11-25T16:24:19.138Z');
    assert.equal(parseRuntimeTime('2026-11-25T16:24:19+01:00')?.toISOString(), '2026-11-25T15:24:19.000Z');
    assert.equal(parseRuntimeTime('0001-01-01T00:00:00Z'), undefined);
    assert.equal(parseRuntimeTime('<no value>'), undefined);
  });

  it('restarts and inspects with the runtime the providerID names', async () => {
    const calls: string[][] = [];
    const runner: CommandRunner = async (argv) => (calls.push(argv), { code: 0, stdout: argv[1] === 'inspect' ? '2026-11-25T16:24:19.138Z\n' : 'kind-worker\n', stderr: '' });
    const r = kindRestarter(runner);
    const n = node({ providerID: 'kind://podman/kind/kind-worker' });
    assert.deepEqual(await r.request(n, 'req-1'), { detail: 'podman restart kind-worker' });
    assert.equal((await r.containerStartedAt!(n))?.toISOString(), '2026-11-25T16:24:19.138Z');
    assert.deepEqual(calls, [['podman', 'restart', 'kind-worker'], ['podman', 'inspect', '--format', '{{.State.StartedAt}}', 'kind-worker']]);
  });

  it('observes the container and kubelet only for kind', async () => {
    const cluster = { getNode: async () => node(), listNodePods: async () => [], lastKubeletStart: async () => new Date(t0) };
    const runner: CommandRunner = async () => ({ code: 0, stdout: '2026-11-25T16:24:19Z', stderr: '' });
    const kind = await observeRestart(kindRestarter(runner), cluster, 'kind-worker');
    assert.equal(kind.containerStartedAt?.toISOString(), '2026-11-25T16:24:19.000Z');
    assert.equal(kind.kubeletStartedAt?.getTime(), t0.getTime());
    const exec = await observeRestart(execRestarter('ssh {node} reboot', runner), cluster, 'kind-worker');
    assert.equal(exec.containerStartedAt, undefined);
  });
});

describe('execRestarter', () => {
  it('runs the template through sh with the node name quoted', async () => {
    const calls: string[][] = [];
    const runner: CommandRunner = async (argv) => (calls.push(argv), { code: 0, stdout: '', stderr: '' });
    const r = await execRestarter('ssh {node} sudo reboot', runner).request(node({ name: "odd'name" }), 'req');
    assert.deepEqual(calls, [['sh', '-c', `ssh ${shellQuote("odd'name")} sudo reboot`]]);
    assert.equal(r.failure, undefined);
  });

  it('returns a failing command\'s exit status and output as data (ssh exits 255 when the host goes down), never throws', async () => {
    const runner: CommandRunner = async () => ({ code: 255, stdout: '', stderr: 'Connection to kind-worker closed by remote host.\n' });
    const r = await execRestarter('ssh {node} sudo reboot', runner).request(node(), 'req');
    assert.match(r.failure ?? '', /the restart command for kind-worker exited 255: Connection to kind-worker closed by remote host\./);
    assert.equal(r.notRun, false, 'it may well have restarted the node');
  });

  it('says when the command never ran (not found, not executable)', async () => {
    for (const code of [126, 127]) {
      const r = await execRestarter('ssh {node} sudo reboot', async () => ({ code, stdout: '', stderr: 'sh: 1: shh: not found' })).request(node(), 'req');
      assert.equal(r.notRun, true, `exit ${code}`);
    }
  });

  it('reports a command stopped by its time limit', async () => {
    const r = await execRestarter('ssh {node} sudo reboot', async () => ({ code: null, signal: 'SIGTERM', stdout: '', stderr: '' })).request(node(), 'req');
    assert.match(r.failure ?? '', /was stopped after 120s \(SIGTERM\)/);
  });

  it('needs {node} in the template', () => assert.throws(() => execRestarter('sudo reboot'), /must contain \{node\}/));
});

describe('rebootRestarter', () => {
  function hostPods() {
    const pods: PodView[] = [];
    const created: HostCommandPod[] = [];
    const deleted: string[] = [];
    const cluster = {
      async listPodsBySelector(namespace: string, selector: string) {
        assert.equal(selector, 'app.kubernetes.io/name=cilium-migrate-host-command,cilium-migrate.io/purpose=reboot');
        return pods.filter((p) => p.namespace === namespace);
      },
      async deletePodByUid(_ns: string, name: string, uid: string) {
        deleted.push(`${name}/${uid}`);
        pods.splice(pods.findIndex((p) => p.uid === uid), 1);
      },
      async createHostCommandPod(p: HostCommandPod) {
        if (pods.some((x) => x.name === p.name)) return 'exists' as const;
        created.push(p);
        pods.push({ namespace: p.namespace, name: p.name, uid: `uid-${created.length}`, nodeName: p.node, phase: 'Running', ready: true, podIP: '', hostNetwork: false, createdAt: t0 });
        return 'created' as const;
      },
    };
    return { cluster, pods, created, deleted };
  }

  it('names its pod after the request and the node, within 63 characters, for any node name', () => {
    const long = 'a'.repeat(253);
    const name = hostCommandPodName('reboot', long, 'run-1@2026-01-01T00:00:00.000Z');
    assert.ok(name.length <= 63 && /^[a-z0-9-]+$/.test(name), name);
    assert.notEqual(hostCommandPodName('reboot', 'kind-worker', 'run-1@t1'), hostCommandPodName('reboot', 'kind-worker', 'run-2@t1'), 'another request, another pod');
    assert.notEqual(hostCommandPodName('reboot', 'kind-worker', 'run-1@t1'), hostCommandPodName('reboot', 'kind-worker2', 'run-1@t1'), 'another node, another pod');
  });

  it('asks once per request: the same request again finds its pod (AlreadyExists) and reboots nothing twice', async () => {
    const f = hostPods();
    const r = rebootRestarter(f.cluster, 'kube-system', 'alpine@sha256:' + 'a'.repeat(64));
    const first = await r.request(node(), 'run-1@t1');
    const again = await r.request(node(), 'run-1@t1');
    assert.equal(f.created.length, 1);
    assert.match(first.detail, /runs systemctl reboot/);
    assert.match(again.detail, /was created by this request already/);
    assert.deepEqual(f.created[0]!.command.slice(-2), ['systemctl', 'reboot']);
    assert.equal(f.created[0]!.purpose, 'reboot');
    assert.equal(f.created[0]!.request, 'run-1@t1');
  });

  it('removes, by UID, the pods earlier requests left on the node, and only those', async () => {
    const f = hostPods();
    const r = rebootRestarter(f.cluster, 'kube-system', 'img');
    await r.request(node(), 'run-0@t0');
    await r.request(node({ name: 'kind-worker2' }), 'run-0@t0');
    const second = await r.request(node(), 'run-1@t1');
    assert.deepEqual(f.deleted, [`${hostCommandPodName('reboot', 'kind-worker', 'run-0@t0')}/uid-1`]);
    assert.match(second.detail, /removed 1 leftover reboot pod of earlier requests/);
    await r.cleanup!(node(), 'run-1@t1');
    assert.deepEqual(f.pods.map((p) => p.nodeName), ['kind-worker2'], 'cleanup removes this node\'s pods');
  });
});

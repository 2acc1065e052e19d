// How the engine restarts a node and knows it is back.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { NodeView, PodView } from '../../cmd/engine/cluster.js';
import { chooseRestartMethod, execRestarter, restartBaseline, restartCompletion, shellQuote, type CommandRunner } from '../../cmd/engine/restart.js';
import { ExitCode, UsageError } from '../../lib/errors.js';

const t0 = new Date('2026-01-01T00:00:00Z');
const node = (extra: Partial<NodeView> = {}): NodeView => ({
  name: 'kind-worker', uid: 'n1', unschedulable: true, labels: {}, annotations: {}, providerID: 'kind://docker/kind/kind-worker',
  bootID: 'boot-a', ready: true, readySince: new Date(t0.getTime() - 60_000), podCIDRs: ['10.244.1.0/24'], controlPlane: false, ...extra,
});
const dsPod = (name: string, uid: string, ready = true): PodView => ({
  namespace: 'kube-system', name: `${name}-x`, uid, nodeName: 'kind-worker', phase: 'Running', ready, podIP: '172.18.0.3', hostNetwork: true, createdAt: t0, controller: { kind: 'DaemonSet', name },
});

describe('chooseRestartMethod', () => {
  it('defaults to kind for kind nodes', () => assert.equal(chooseRestartMethod(undefined, node()), 'kind'));
  it('takes the flag', () => assert.equal(chooseRestartMethod('none', node()), 'none'));
  it('asks for a choice on other nodes instead of guessing', () => {
    assert.throws(() => chooseRestartMethod(undefined, node({ providerID: 'aws:///eu-west-1a/i-123' })), (e: unknown) => e instanceof UsageError && e.exitCode === ExitCode.usage && /cannot guess/.test(e.message));
  });
});

describe('restartCompletion', () => {
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
      const how = restartCompletion(before, n, pods);
      if (expected) assert.match(how ?? '', expected);
      else assert.equal(how, undefined);
    });
  }
});

describe('execRestarter', () => {
  it('runs the template through sh with the node name quoted', async () => {
    const calls: string[][] = [];
    const runner: CommandRunner = async (argv) => (calls.push(argv), { code: 0, stdout: '', stderr: '' });
    await execRestarter('ssh {node} sudo reboot', runner).request(node({ name: "odd'name" }));
    assert.deepEqual(calls, [['sh', '-c', `ssh ${shellQuote("odd'name")} sudo reboot`]]);
  });

  it('reports a failing command with its output', async () => {
    const runner: CommandRunner = async () => ({ code: 255, stdout: '', stderr: 'ssh: connect to host kind-worker port 22: Connection refused\n' });
    await assert.rejects(execRestarter('ssh {node} sudo reboot', runner).request(node()), /exit 255\): ssh: connect to host/);
  });

  it('needs {node} in the template', () => assert.throws(() => execRestarter('sudo reboot'), /must contain \{node\}/));
});

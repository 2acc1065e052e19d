// Negative end to end on the lab: Cilium's overlay broken on a node right after it is migrated (UDP
// 8473 dropped on kind-worker2 once it is back from its restart) must stop the plugin at that node's
// gate with a message naming the tunnel port, and leave the node cordoned.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { labDown, labUp } from '../../lab/cli.js';
import { statePaths } from '../../lab/daemon.js';
import { labNodeFlags, prepareStep } from '../../lab/demo.js';
import { api } from '../../lab/lab-api.js';
import { deployWorkloads, scenario, type Scenario } from '../../lab/scenario.js';
import { repoRoot } from '../harness/plugin.js';

const distDir = join(repoRoot, 'dist');
const labJs = join(distDir, 'lab.js');

describe('the lab: a broken Cilium overlay on a freshly migrated node stops the gate', () => {
  let stateDir: string;
  let s: Scenario;
  const log: string[] = [];

  before(async () => {
    stateDir = mkdtempSync(join(tmpdir(), 'lab-gate-'));
    await labUp({ stateDir, nodes: 3, labJs, progress: (l) => log.push(l) });
    s = scenario({ kubeconfig: statePaths(stateDir).kubeconfig, distDir, stateDir });
    await deployWorkloads(s, { nginxReplicas: 4 });
    await prepareStep(s, (l) => log.push(l));
  });

  after(async () => {
    if (stateDir && existsSync(stateDir)) await labDown({ stateDir, progress: (l) => log.push(l) });
  });

  it('fails kind-worker2\'s gate naming the tunnel port when UDP 8473 is dropped there after its restart, and leaves it cordoned', async () => {
    const first = await s.plugin(['node', 'kind-worker', ...labNodeFlags(s)]);
    assert.equal(first.code, 0, `kind-worker migrates:\n${first.stderr}`);
    const lab = `${process.execPath} ${labJs} --state-dir ${stateDir}`;
    const flags = labNodeFlags(s).filter((f, i, all) => f !== '--restart-command' && all[i - 1] !== '--restart-command');
    const r = await s.plugin(['node', 'kind-worker2', ...flags, '--restart-command', `${lab} restart-node {node} && ${lab} drop-udp {node} 8473`, '--gate-timeout', '20s']);
    assert.equal(r.code, 8, `the gate fails (exit 8):\n${r.stderr}`);
    assert.match(r.stderr, /gate for kind-worker2: FAIL/);
    assert.match(r.stderr, /tunnel port UDP 8473/, 'the message names the tunnel port');
    const node = await api<{ spec: { unschedulable?: boolean } }>(s.kube, 'GET', '/api/v1/nodes/kind-worker2');
    assert.equal(node.spec.unschedulable, true, 'kind-worker2 stays cordoned');
  });
});

// `connectivity` end to end on real parts: four nodes as network namespaces with both VXLAN
// overlays, a real agent process in a pod namespace on each, a real control plane whose API server
// reaches those pods only through the egress proxy in a lab namespace, and the bundled plugin
// reading every row through the pod proxy. Faults are real iptables drops; the HTML view is opened
// in headless Chromium.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startControlPlane, type ControlPlane } from '../../lab/control-plane.js';
import { createTopology, netnsOverlays, type NetnsPod, type Topology } from '../../lab/netns.js';
import { agentNamespace, migrationLabel } from '../../lib/defaults.js';
import type { ConnectivityReport } from '../../cmd/connectivity/views.js';
import { bundledPlugin, repoRoot, runPlugin, type PluginRun } from '../harness/plugin.js';
import { ensureNamespace, labKube, labKubelet, nodeHeartbeat, registerLabNode, registerLabPod } from '../harness/lab-objects.js';
import { createCiliumNodes } from '../harness/migration-cluster.js';
import { installCiliumCrds } from '../../lab/cluster-objects.js';
import { ExitCode } from '../../lib/errors.js';
import { eventually } from '../harness/wait.js';

const agentJs = bundledPlugin.replace(/kubectl-cilium_migrate$/, 'agent.js');
const egressProxyJs = join(repoRoot, 'dist', 'lab', 'egress-proxy.js');
const intervalMs = 2000;
const timeoutMs = 500;
const nodeName = (i: number) => `node-${i}`;

describe('connectivity on real agents in a dual-overlay netns topology, read through the API server', () => {
  let topo: Topology;
  let cp: ControlPlane;
  let dir: string;
  let heartbeat: { stop(): Promise<void> } | undefined;
  let kubelet: { stop(): Promise<void> } | undefined;
  const pods: NetnsPod[] = [];

  const connectivity = (...extra: string[]): Promise<PluginRun> =>
    runPlugin(['connectivity', '--kubeconfig', cp.kubeconfig, '--since', '5s', '--request-timeout', '1s', ...extra], { timeoutMs: 60_000 });
  const report = (r: PluginRun): ConnectivityReport => {
    try {
      return JSON.parse(r.stdout) as ConnectivityReport;
    } catch {
      throw new Error(`not JSON (exit ${r.code}): ${r.stdout}\n${r.stderr}`);
    }
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'connectivity-test-'));
    topo = await createTopology(4);
    const socket = join(dir, 'egress.sock');
    cp = await startControlPlane({ clusterEgressSocket: socket, kwok: false });
    // The API server's way into the pod networks: the proxy sits in node 0's namespace (a legacy node).
    topo.spawn(topo.nodes[0]!.netns, [process.execPath, egressProxyJs, '--socket', socket], undefined, join(dir, 'egress-proxy.log'));

    pods.push(await topo.addPod(0, 'legacy', 'agent-0'), await topo.addPod(1, 'legacy', 'agent-1'), await topo.addPod(2, 'cilium', 'agent-2'), await topo.addPod(3, 'cilium', 'agent-3'));
    const peersFile = join(dir, 'cluster.json');
    writeFileSync(peersFile, JSON.stringify({
      agents: pods.map((p) => ({ node: nodeName(p.node.index), pod: p.name, ip: p.ip })),
      nodes: topo.nodes.map((n) => ({ name: nodeName(n.index), addresses: [n.underlayIp], labels: n.index >= 2 ? { [migrationLabel]: 'true' } : {} })),
      ciliumNodeCidrs: Object.fromEntries(topo.nodes.map((n) => [nodeName(n.index), [n.ciliumCidr]])),
    }));
    for (const pod of pods) {
      topo.spawn(pod.netns, [
        process.execPath, agentJs, '--peers-file', peersFile, '--port', '8080',
        '--interval', `${intervalMs}ms`, '--timeout', `${timeoutMs}ms`, '--window', '20s', '--large-packet-size', '1400',
      ], { PATH: process.env.PATH ?? '', NODE_NAME: nodeName(pod.node.index), POD_NAME: pod.name, POD_NAMESPACE: agentNamespace, POD_IP: pod.ip }, join(dir, `${pod.name}.log`));
    }

    const kube = labKube(cp.kubeconfig);
    for (const n of topo.nodes) await registerLabNode(kube, nodeName(n.index), n.index >= 2 ? { [migrationLabel]: 'true' } : {});
    heartbeat = nodeHeartbeat(kube, topo.nodes.map((n) => nodeName(n.index)));
    await ensureNamespace(kube, agentNamespace);
    for (const p of pods) {
      await registerLabPod(kube, { namespace: agentNamespace, name: p.name, node: nodeName(p.node.index), ip: p.ip, labels: { 'app.kubernetes.io/name': 'cilium-migrate-agent' } });
    }
  });

  after(async () => {
    await kubelet?.stop();
    await heartbeat?.stop();
    await cp?.stop();
    await topo?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('shows every cell reachable, by overlay, and exits 0', async () => {
    const passed = await eventually('a PASS from connectivity', async () => {
      const r = await connectivity('-o', 'json');
      return r.code === 0 ? r : undefined;
    }, 60_000, 500);
    const data = report(passed);
    assert.equal(data.verdict, 'PASS');
    assert.equal(data.cells.length, 12);
    assert.deepEqual(data.cells.filter((c) => c.mark !== 'reachable'), []);
    assert.deepEqual(data.nodes.map((n) => `${n.name}:${n.overlay}`), ['node-0:legacy', 'node-1:legacy', 'node-2:cilium', 'node-3:cilium']);
    assert.deepEqual(Object.fromEntries(Object.entries(data.summary).map(([pair, s]) => [pair, `${s.reachable}/${s.total}`])), {
      'legacy->legacy': '2/2', 'legacy->cilium': '4/4', 'cilium->legacy': '4/4', 'cilium->cilium': '2/2',
    });
    const table = await connectivity();
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /Connectivity: PASS/);
    assert.match(table.stdout, /legacy->cilium\s+4\s+4\s+0\s+0\s+0/);

    // --watch draws again every --interval until Ctrl-C, then exits with the last verdict.
    let interrupted = false;
    const watched = await runPlugin(['connectivity', '--kubeconfig', cp.kubeconfig, '--since', '5s', '--watch', '--interval', '1s', '-v', '1'], {
      timeoutMs: 60_000,
      onStderr: (text, kill) => {
        if (!interrupted && (text.match(/^read \d+ of \d+ rows/gm) ?? []).length >= 3) {
          interrupted = true;
          kill('SIGINT');
        }
      },
    });
    assert.equal(watched.code, 0, watched.stderr);
    assert.ok((watched.stdout.match(/^Connectivity: PASS/gm) ?? []).length >= 3, watched.stdout);
    assert.doesNotMatch(watched.stdout, /\x1b\[/, 'no colours or cursor moves off a terminal');

    // --serve: the same report over HTTP on loopback until Ctrl-C.
    let served: ConnectivityReport | undefined;
    let asked = false;
    const serving = await runPlugin(['connectivity', '--kubeconfig', cp.kubeconfig, '--since', '5s', '--serve', '127.0.0.1:0', '--interval', '1s'], {
      timeoutMs: 60_000,
      onStderr: (text, kill) => {
        const url = /serving the matrix at (http:\/\/127\.0\.0\.1:\d+\/)/.exec(text)?.[1];
        if (!url || asked || !/: PASS$/m.test(text)) return;
        asked = true;
        void fetch(`${url}report.json`).then(async (res) => (served = (await res.json()) as ConnectivityReport)).finally(() => kill('SIGINT'));
      },
    });
    assert.equal(serving.code, 0, serving.stderr);
    assert.equal(served?.verdict, 'PASS');
    assert.equal(served?.cells.length, 12);
  });

  it('after UDP 8473 is dropped on node 2, fails within two probe intervals naming exactly its cells and the tunnel port; passes again once restored', async () => {
    const fault = Date.now();
    await topo.dropUdpPort(2, netnsOverlays.cilium.udpPort);
    const html = join(dir, 'matrix.html');
    let failed: PluginRun;
    try {
      // Two probe intervals (and one probe timeout) after the fault every probe of node 2 has failed once.
      await new Promise((r) => setTimeout(r, fault + 2 * intervalMs + timeoutMs - Date.now()));
      failed = await connectivity('-o', 'json', '--html', html);
      const data = report(failed);
      assert.equal(failed.code, 8, `exit 8 (gate FAIL): ${failed.stderr}`);
      assert.ok(Date.parse(data.readAt) - fault <= 2 * intervalMs + timeoutMs + 3000, `read ${Date.parse(data.readAt) - fault} ms after the fault`);
      const involving2 = (s: string) => /(^|>)node-2(\/|$)/.test(s) || s === 'node-2';
      const subjects = data.findings.filter((f) => f.severity !== 'INFO').flatMap((f) => f.subjects);
      assert.ok(subjects.length > 0 && subjects.every(involving2), `only node 2's cells: ${subjects.join(', ')}`);
      assert.deepEqual([...new Set(data.findings.filter((f) => f.severity === 'FAIL').flatMap((f) => f.subjects.map((s) => s.split('/')[0])))].sort(), ['node-0>node-2', 'node-1>node-2', 'node-3>node-2']);
      assert.deepEqual(data.cells.filter((c) => c.mark !== 'reachable').map((c) => `${c.src}>${c.dst}`).sort(), ['node-0>node-2', 'node-1>node-2', 'node-2>node-0', 'node-2>node-1', 'node-2>node-3', 'node-3>node-2']);
      assert.deepEqual(data.hints.map((h) => `${h.cause}:${h.nodes.join(',')}`), ['tunnel-port:node-2']);
      assert.match(data.hints[0]!.message, /UDP 8473 is likely blocked on node-2/);
      assert.match(failed.stderr, /connectivity gate FAIL: .*likely cause: tunnel-port \(node-2\)/);

      // The same evidence as a page: headless Chromium renders it; its cells and summary match the JSON.
      await checkHtmlInChromium(html, data, dir);
    } finally {
      await topo.restoreUdpPort(2, netnsOverlays.cilium.udpPort);
    }
    const healed = await eventually('a PASS after the restore', async () => {
      const r = await connectivity('-o', 'json');
      return r.code === 0 ? r : undefined;
    }, 30_000, 500);
    assert.equal(report(healed).verdict, 'PASS');
  });

  it('the node engine\'s matrix gate: the baseline is kept on the Node, so a resumed run judges a later regression against it', async () => {
    await installCiliumCrds(cp);
    await cp.kubectl(['apply', '--server-side', '-f', join(repoRoot, 'manifests', 'ciliumnodeconfig.yaml')]);
    await createCiliumNodes(cp, (node) => [topo.nodes[Number(node.slice(-1))]!.ciliumCidr]);
    kubelet = labKubelet(labKube(cp.kubeconfig), topo.nodes.map((n) => ({ name: nodeName(n.index), ciliumCidr: n.ciliumCidr, hostIp: n.underlayIp })));
    // node-2 is on Cilium already (as after its switch); the engine takes it through every step
    // again with the matrix gate. No workload runs here, so the drain selects none.
    const engine = (...extra: string[]) => runPlugin(['node', 'node-2', '--kubeconfig', cp.kubeconfig, '--restart', 'none', '--pod-selector', 'app=workload', '--gate', 'matrix',
      '--request-timeout', '1s', '--gate-rounds', '2', '--gate-interval', '1s', '--agent-restart-timeout', '30s', '--verify-timeout', '30s', '-o', 'json', ...extra], { timeoutMs: 180_000 });
    const state = async () => JSON.parse((await cp.get<{ metadata: { annotations: Record<string, string> } }>('/api/v1/nodes/node-2')).metadata.annotations['cilium-migrate.io/state']!) as { steps: Record<string, { done?: string; data?: { matrixBaseline?: { cells: string[] } } }> };

    // Run 1 takes the baseline (everything reachable now) and is killed right after.
    await eventually('a healthy matrix', async () => ((await connectivity('-o', 'json')).code === 0 ? true : undefined), 30_000, 500);
    const killed = await runPlugin(['node', 'node-2', '--kubeconfig', cp.kubeconfig, '--restart', 'none', '--pod-selector', 'app=workload', '--gate', 'matrix', '--request-timeout', '1s'], {
      env: { ...process.env, CILIUM_MIGRATE_TEST_KILL_AT: 'node-2/baseline-gate:done' }, timeoutMs: 120_000,
    });
    assert.equal(killed.signal, 'SIGKILL', killed.stderr);
    const recorded = (await state()).steps['baseline-gate'];
    assert.ok(recorded?.done && recorded.data?.matrixBaseline, `the baseline is on the Node: ${JSON.stringify(recorded)}`);
    assert.ok(!recorded.data.matrixBaseline.cells.includes('node-0>node-1/icmp-large'));

    // Then large packets start failing between node 0 and node 1 (outside the focus): a regression
    // against the stored baseline, so the resumed run's gate fails (a fresh baseline would have hidden it).
    await topo.setMtu(0, netnsOverlays.legacy.dev, 1200);
    try {
      const failed = await engine('--gate-timeout', '12s');
      assert.equal(failed.code, ExitCode.gateFail, failed.stderr);
      assert.match(failed.stderr, /resuming at cordon/);
      assert.match(failed.stderr, /gate for node-2: FAIL\n(.*\n)*\s+FAIL: node-0>node-1: below 95% success, passing in the baseline: icmp-large 0% of \d+/);
      assert.match(failed.stderr, /hint \(mtu\): large packets fail while small ones pass on node-0>node-1/);
      assert.equal((await state()).steps.gate?.done, undefined);
    } finally {
      await topo.setMtu(0, netnsOverlays.legacy.dev, 1450);
      // agent-0's kernel learned the small path MTU from node 0's "fragmentation needed" and keeps it
      // for ten minutes; forget it, as a real pod would only after that time.
      await topo.exec(pods[0]!.netns, ['ip', 'route', 'flush', 'cache']);
    }
    // Healed: once the failed samples leave the agents' window, the gate passes twice in a row.
    const passed = await engine('--gate-timeout', '90s');
    assert.equal(passed.code, 0, passed.stderr);
    const steps = (JSON.parse(passed.stdout) as { steps: { step: string; outcome: string; message: string }[] }[])[0]!.steps;
    assert.equal(steps.find((s) => s.step === 'baseline-gate')?.outcome, 'done-before');
    assert.match(steps.find((s) => s.step === 'gate')!.message, /^PASS 2 times in a row \(matrix\)/);
    assert.ok((await state()).steps.uncordon?.done);
  });
});

function run(file: string, args: string[], home: string, timeout = 60_000): Promise<{ code: number; stdout: string; stderr: string }> {
  // Chromium writes its profile, crash reports and caches under HOME and XDG: keep them in the test's directory.
  const env = { PATH: process.env.PATH ?? '', HOME: home, XDG_CONFIG_HOME: join(home, '.config'), XDG_CACHE_HOME: join(home, '.cache'), TMPDIR: home };
  return new Promise((resolve) => {
    execFile(file, args, { timeout, maxBuffer: 16 << 20, env }, (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }));
  });
}

const chromium = '/usr/bin/chromium';
const chromiumFlags = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--hide-scrollbars'];

async function checkHtmlInChromium(html: string, data: ConnectivityReport, dir: string): Promise<void> {
  assert.ok(existsSync(chromium), 'Debian\'s chromium is installed (make system-deps)');
  const url = `file://${html}`;
  const shot = join(dir, 'matrix.png');
  // Short: Chromium puts a Unix socket under it, and a socket path has at most 107 bytes.
  const home = mkdtempSync(join(tmpdir(), 'chr-'));
  try {
    await renderInChromium(home, url, shot, data);
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}

async function renderInChromium(home: string, url: string, shot: string, data: ConnectivityReport): Promise<void> {
  const s = await run(chromium, [...chromiumFlags, `--user-data-dir=${join(home, 'shot')}`, '--window-size=1200,900', `--screenshot=${shot}`, url], home);
  assert.ok(existsSync(shot), `a screenshot was taken: ${s.stderr.slice(-500)}`);
  const png = readFileSync(shot);
  assert.equal(png.subarray(1, 4).toString(), 'PNG');
  assert.ok(png.readUInt32BE(16) === 1200 && png.readUInt32BE(20) === 900, 'of the window size');
  const d = await run(chromium, [...chromiumFlags, `--user-data-dir=${join(home, 'dom')}`, '--dump-dom', url], home);
  assert.equal(d.code, 0, d.stderr.slice(-500));
  const dom = d.stdout;
  const cells = [...dom.matchAll(/<td class="cell [^"]*" data-src="([^"]+)" data-dst="([^"]+)" data-mark="([a-z]+)"/g)].map((m) => `${m[1]}>${m[2]}:${m[3]}`).sort();
  assert.deepEqual(cells, data.cells.map((c) => `${c.src}>${c.dst}:${c.mark}`).sort(), 'the page shows the JSON cells');
  const summary = Object.fromEntries([...dom.matchAll(/<tr data-pair="([a-z&;>-]+)" data-total="(\d+)" data-reachable="(\d+)" data-lossy="(\d+)" data-unreachable="(\d+)" data-unknown="(\d+)">/g)].map((m) => [m[1]!.replace(/&gt;/g, '>'), { total: +m[2]!, reachable: +m[3]!, lossy: +m[4]!, unreachable: +m[5]!, unknown: +m[6]! }]));
  assert.deepEqual(summary, data.summary, 'the page shows the JSON summary');
  assert.match(dom, new RegExp(`id="verdict" class="verdict ${data.verdict}">${data.verdict}<`));
}

// `make demo`: the seed's migration (../shared/seed/migrating-to-cilium-lab.txt) end to end on a
// fresh lab with the real plugin: preflight, values, prepare, node kind-worker, node kind-worker2,
// node kind-control-plane, finalize, with the plugin's status and the reachability matrix after
// every step and a summary at the end. The lab is torn down afterwards, also on failure or Ctrl-C.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LabStatus } from './daemon.js';
import { statePaths } from './daemon.js';
import { deployWorkloads, flannelInstalled, migratedNodes, podsPerOverlay, ProbeTally, scenario, type Scenario } from './scenario.js';
import { api } from './lab-api.js';
import { waitUntil } from './wait.js';

export interface DemoOptions {
  stateDir: string;
  nodes: number;
  distDir: string;
  labUp(o: { stateDir: string; nodes: number; progress?: (line: string) => void }): Promise<LabStatus>;
  labDown(o: { stateDir: string; progress?: (line: string) => void }): Promise<{ wasRunning: boolean }>;
  out(line: string): void;
  err(line: string): void;
}

/** The Cilium version the lab's cilium DaemonSet names (its image tag). */
export const labCiliumVersion = '1.18.0';

/** The migration order of the seed: workers first, the control plane last. */
export function seedOrder(nodes: string[]): string[] {
  return [...nodes.filter((n) => n !== 'kind-control-plane'), ...nodes.filter((n) => n === 'kind-control-plane')];
}

/** The node steps' flags for the lab: restarts through the lab, short gate pacing. */
export function labNodeFlags(s: Scenario): string[] {
  return [...s.restartFlags(), '--gate-interval', '2s', '--restart-timeout', '120s', '--agent-restart-timeout', '120s'];
}

/** The seed's CiliumNodeConfig, applied by the plugin's `prepare`. */
export async function prepareStep(s: Scenario, echo: (line: string) => void): Promise<void> {
  const r = await s.plugin(['prepare'], echo);
  if (r.code !== 0) throw new Error(`prepare failed (exit ${r.code}): ${r.stderr.trim()}`);
}

/**
 * The seed's `helm upgrade` to the final values and `rollout restart ds/cilium`, done the lab's way
 * (it has no Helm): cilium-config gets what the final values set, then the agents restart and each
 * writes its CNI config.
 */
export async function finalCiliumValues(s: Scenario, echo: (line: string) => void): Promise<void> {
  echo('(the lab has no Helm: cilium-config gets the final values as `helm upgrade` would, then kubectl -n kube-system rollout restart ds/cilium)');
  await api(s.kube, 'PATCH', '/api/v1/namespaces/kube-system/configmaps/cilium-config', {
    data: { 'custom-cni-conf': 'false', 'write-cni-conf-when-ready': '/host/etc/cni/net.d/05-cilium.conflist', 'cni-exclusive': 'true', 'unmanaged-pod-watcher-restart': 'true', 'enable-policy': 'default' },
  }, 'merge');
  echo(s.kubectl(['-n', 'kube-system', 'rollout', 'restart', 'daemonset/cilium']).trim());
  echo(s.kubectl(['-n', 'kube-system', 'rollout', 'status', 'daemonset/cilium', '--timeout=180s']).trim().split('\n').pop() ?? '');
}

/** The seed's last part: the final values, then `finalize`, which removes the CiliumNodeConfig and Flannel and cleans the nodes. */
export async function finalizeStep(s: Scenario, echo: (line: string) => void): Promise<void> {
  await finalCiliumValues(s, echo);
  const r = await s.plugin(['finalize', '--yes', '--cleanup-nodes'], echo);
  if (r.code !== 0) throw new Error(`finalize failed (exit ${r.code}): ${r.stderr.trim()}`);
}

/** Status and matrix after a step: the plugin's status, then a green matrix (or the reason it is not). */
async function afterStep(s: Scenario, tally: ProbeTally, o: DemoOptions): Promise<void> {
  const st = await s.plugin(['status']);
  for (const l of st.stdout.trimEnd().split('\n')) o.out(`  ${l}`);
  // Fresh evidence only: agents restarted by the step need a few probe rounds to fill their cells.
  let c = { code: -1, stdout: '', stderr: '' };
  await waitUntil('a green connectivity matrix', async () => {
    c = await s.plugin(['connectivity', '--since', '10s']);
    return c.code === 0 ? true : undefined;
  }, 90_000, 3000).catch(() => {});
  for (const l of c.stdout.trimEnd().split('\n')) o.out(`  ${l}`);
  if (c.code !== 0) throw new Error(`the connectivity matrix is not green after this step (exit ${c.code})`);
  await tally.sample(s);
}

function tailOf(file: string, lines: number): string[] {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines);
  } catch {
    return [];
  }
}

export async function runDemo(o: DemoOptions): Promise<number> {
  const started = Date.now();
  const step = (title: string) => o.out(`\n==> ${title}  [+${((Date.now() - started) / 1000).toFixed(0)}s]`);
  const indent = (line: string) => o.out(`  ${line}`);
  let up = false;
  const onSignal = () => void o.labDown({ stateDir: o.stateDir }).finally(() => process.exit(130));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    step(`bringing the lab up: ${o.nodes} nodes, Flannel (VXLAN 8472, 10.244.0.0/16), Cilium in migration mode (VXLAN 8473, 10.245.0.0/16)`);
    const lab = await o.labUp({ stateDir: o.stateDir, nodes: o.nodes, progress: (l) => indent(l) });
    up = true;
    const s = scenario({ kubeconfig: statePaths(o.stateDir).kubeconfig, distDir: o.distDir, stateDir: o.stateDir });
    const tally = new ProbeTally();

    step('kubectl create deployment nginx --image nginx --port 80 --replicas 10; the probe agent DaemonSet');
    await deployWorkloads(s);
    indent(s.kubectl(['get', 'pods', '-o', 'wide']).trimEnd().split('\n').join('\n  '));
    await afterStep(s, tally, o);

    step('kubectl cilium-migrate preflight');
    const pre = await s.plugin(['preflight'], indent);
    if (pre.code !== 0) throw new Error(`preflight failed (exit ${pre.code})`);

    step(`kubectl cilium-migrate values --phase initial --cilium-version ${labCiliumVersion}`);
    const values = await s.plugin(['values', '--phase', 'initial', '--cilium-version', labCiliumVersion], indent);
    if (values.code !== 0) throw new Error(`values failed (exit ${values.code})`);

    step('kubectl cilium-migrate prepare');
    await prepareStep(s, indent);
    await afterStep(s, tally, o);

    for (const node of seedOrder(lab.nodes.map((n) => n.name))) {
      step(`kubectl cilium-migrate node ${node}`);
      const r = await s.plugin(['node', node, ...labNodeFlags(s)], indent);
      if (r.code !== 0) throw new Error(`node ${node} failed (exit ${r.code})`);
      await afterStep(s, tally, o);
    }

    // finalize removes the migration's marks from the nodes: count them before.
    const migrated = await migratedNodes(s);
    step('kubectl cilium-migrate finalize');
    await finalizeStep(s, indent);
    await afterStep(s, tally, o);

    const nginx = await podsPerOverlay(s, 'app=nginx');
    const all = await podsPerOverlay(s);
    const probes = tally.totals();
    const flannel = await flannelInstalled(s);
    step('summary');
    indent(`nodes migrated: ${migrated.length} of ${lab.nodes.length} (${migrated.join(', ')})`);
    indent(`pods per overlay: ${all.cilium} on Cilium (10.245.0.0/16), ${all.legacy} on the legacy network; nginx: ${nginx.cilium} of ${nginx.cilium + nginx.legacy} on Cilium`);
    indent(`probes sent: ${probes.sent}, failed: ${probes.failed}`);
    indent(`Flannel: ${flannel ? 'still installed' : 'removed'}`);
    indent(`total time: ${((Date.now() - started) / 1000).toFixed(0)}s`);
    const ok = migrated.length === lab.nodes.length && nginx.legacy === 0 && nginx.cilium > 0 && !flannel;
    if (!ok) throw new Error('the migration did not complete: see the summary above');
    return 0;
  } catch (err) {
    o.err(`\ndemo failed: ${(err as Error).message}`);
    if (up) {
      o.err(`the lab's log ended with:`);
      for (const l of tailOf(statePaths(o.stateDir).log, 25)) o.err(`  ${l}`);
    }
    return 1;
  } finally {
    if (up) {
      step('tearing the lab down');
      await o.labDown({ stateDir: o.stateDir, progress: indent });
      indent('lab down: nothing left');
    }
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}


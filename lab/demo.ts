// `make demo`: the seed's migration (../shared/seed/migrating-to-cilium-lab.txt) end to end on a
// fresh real-node lab (real kubelets and containerd, Flannel from its manifest, real Cilium from its
// chart through helm) with the real plugin: preflight, values, prepare, node kind-worker, node
// kind-worker2, node kind-control-plane (the plugin's default --restart kind, through the lab's
// docker), finalize --apply (the real helm upgrade to the final values, the agents restarted, Flannel
// removed), with the plugin's status and the reachability matrix after every step and a summary at
// the end. The lab's layout (lab/layout.ts: pod CIDRs, tunnel ports, node count, Cilium's namespace)
// is a parameter; every plugin command gets its flags. The lab is torn down afterwards, also on
// failure or Ctrl-C.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LabStatus } from './daemon.js';
import { statePaths } from './daemon.js';
import { ciliumVersion } from './images/cilium.js';
import { labHostCommandImage } from './images/catalog.js';
import { ciliumChart, initialValuesArgs } from './node/cilium-install.js';
import { defaultLayout, describeLayout, pluginLayoutFlags, type LabLayout } from './layout.js';
import { deployWorkloads, flannelInstalled, migratedNodes, podsPerOverlay, ProbeTally, scenario, type Scenario } from './scenario.js';
import { api } from './lab-api.js';
import { waitUntil } from './wait.js';

export interface DemoOptions {
  stateDir: string;
  nodes: number;
  /** Pod CIDRs, tunnel ports and Cilium's namespace (default: the seed's). */
  layout?: LabLayout;
  distDir: string;
  labUp(o: { stateDir: string; nodes: number; layout?: LabLayout; progress?: (line: string) => void }): Promise<LabStatus>;
  labDown(o: { stateDir: string; progress?: (line: string) => void }): Promise<{ wasRunning: boolean }>;
  out(line: string): void;
  err(line: string): void;
}

/** The Cilium version the lab runs (lab/bins/cilium/module.env), without its `v`: what `values --cilium-version` takes. */
export function labCiliumVersion(distDir: string): string {
  return ciliumVersion(join(distDir, '..')).replace(/^v/, '');
}

/** The migration order of the seed: workers first, the control plane last. */
export function seedOrder(nodes: string[]): string[] {
  return [...nodes.filter((n) => n !== 'kind-control-plane'), ...nodes.filter((n) => n === 'kind-control-plane')];
}

/**
 * The node steps' flags for the lab: the plugin's default restart (--restart kind, through the
 * lab's docker on PATH), short gate pacing, and room for a busy machine: a restarted node's Cilium
 * agent compiles its datapath before it is Ready.
 */
export function labNodeFlags(): string[] {
  return ['--gate-interval', '2s', '--restart-timeout', '300s', '--agent-restart-timeout', '300s'];
}

/** The seed's CiliumNodeConfig, applied by the plugin's `prepare`. */
export async function prepareStep(s: Scenario, echo: (line: string) => void): Promise<void> {
  const r = await s.plugin(['prepare'], echo);
  if (r.code !== 0) throw new Error(`prepare failed (exit ${r.code}): ${r.stderr.trim()}`);
}

/**
 * The seed's last part with the plugin: `finalize --apply` runs the real `helm upgrade` of the
 * lab's release (helm from the lab's bin directory, the chart from the binary cache) to the final
 * values and restarts the agents, then removes the CiliumNodeConfig and Flannel and cleans the
 * nodes (through the lab's host-command image).
 */
export async function finalizeStep(s: Scenario, echo: (line: string) => void): Promise<void> {
  const chartDir = execFileSync(join(s.distDir, '..', 'lab', 'bins', 'build.sh'), ['--dir', 'cilium-chart'], { encoding: 'utf8' }).trim();
  const r = await s.plugin(['finalize', '--apply', '--helm-chart', ciliumChart(chartDir), '--yes', '--cleanup-nodes', '--host-image', labHostCommandImage, '--rollout-timeout', '10m'], echo);
  if (r.code !== 0) throw new Error(`finalize failed (exit ${r.code}): ${r.stderr.trim()}`);
}

/** `cilium-dbg status --brief` in every Cilium agent pod (in the layout's namespace): node name and the first line (`OK` when healthy). */
export async function ciliumStatusPerNode(s: Scenario): Promise<{ node: string; pod: string; status: string }[]> {
  const ns = s.layout.ciliumNamespace;
  const pods = await api<{ items: { metadata: { name: string }; spec: { nodeName?: string } }[] }>(s.kube, 'GET', `/api/v1/namespaces/${ns}/pods?labelSelector=k8s-app%3Dcilium`);
  return pods.items.map((p) => {
    let status: string;
    try {
      status = s.kubectl(['-n', ns, 'exec', p.metadata.name, '-c', 'cilium-agent', '--', 'cilium-dbg', 'status', '--brief']).trim().split('\n')[0] ?? '';
    } catch (err) {
      status = `failed: ${((err as { stderr?: string }).stderr ?? (err as Error).message).trim().split('\n').pop()}`;
    }
    return { node: p.spec.nodeName ?? '', pod: p.metadata.name, status };
  }).sort((a, b) => a.node.localeCompare(b.node));
}

/**
 * `cilium-dbg status` on every node once each says OK, or as it is after `timeoutMs`: right after
 * the agents restart (finalize --apply), a controller can report an error for a few seconds.
 */
export async function ciliumStatusSettled(s: Scenario, timeoutMs = 90_000): Promise<{ node: string; pod: string; status: string }[]> {
  let last: { node: string; pod: string; status: string }[] = [];
  await waitUntil('cilium-dbg status OK on every node', async () => {
    last = await ciliumStatusPerNode(s);
    return last.length > 0 && last.every((a) => /^OK\b/.test(a.status)) ? true : undefined;
  }, timeoutMs, 3000).catch(() => undefined);
  return last;
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
  }, 180_000, 3000).catch(() => {});
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
    const layout = o.layout ?? defaultLayout;
    step(`bringing the lab up: ${o.nodes} nodes with real kubelets and containerd, Flannel (VXLAN ${layout.legacyTunnelPort}, ${layout.legacyCidr}), Cilium from its chart through helm in migration mode in namespace ${layout.ciliumNamespace} (VXLAN ${layout.ciliumTunnelPort}, ${layout.ciliumCidr})`);
    const lab = await o.labUp({ stateDir: o.stateDir, nodes: o.nodes, layout, progress: (l) => indent(l) });
    up = true;
    indent(`layout: ${describeLayout(lab.layout)}`);
    const s = scenario({ kubeconfig: statePaths(o.stateDir).kubeconfig, distDir: o.distDir, stateDir: o.stateDir, layout: lab.layout });
    // The plugin gets the layout's flags (lib/layout.ts pluginLayoutFlags); the titles show them.
    const flags = (command: string) => pluginLayoutFlags(layout, command).join(' ');
    const tally = new ProbeTally();

    step('nginx (lab up ran kubectl create deployment nginx --image nginx --port 80 --replicas 10); the probe agent DaemonSet');
    await deployWorkloads(s);
    indent(s.kubectl(['get', 'pods', '-o', 'wide']).trimEnd().split('\n').join('\n  '));
    await afterStep(s, tally, o);

    step(`kubectl cilium-migrate preflight ${flags('preflight')}`);
    const pre = await s.plugin(['preflight'], indent);
    if (pre.code !== 0) throw new Error(`preflight failed (exit ${pre.code})`);

    // lab up installed Cilium with exactly these values: `values --phase initial ... | helm install ...`.
    // (s.plugin adds the layout's flags itself.)
    const version = labCiliumVersion(o.distDir);
    step(`kubectl cilium-migrate ${initialValuesArgs(version, layout).join(' ')}   (lab up piped these into helm install)`);
    const values = await s.plugin(['values', '--phase', 'initial', '--cilium-version', version], indent);
    if (values.code !== 0) throw new Error(`values failed (exit ${values.code})`);

    step(`kubectl cilium-migrate prepare ${flags('prepare')}`);
    await prepareStep(s, indent);
    await afterStep(s, tally, o);

    for (const node of seedOrder(lab.nodes.map((n) => n.name))) {
      step(`kubectl cilium-migrate node ${node} ${flags('node')}   (--restart kind: docker restart through the lab's docker)`);
      const r = await s.plugin(['node', node, ...labNodeFlags()], indent);
      if (r.code !== 0) throw new Error(`node ${node} failed (exit ${r.code})`);
      await afterStep(s, tally, o);
    }

    // finalize removes the migration's marks from the nodes: count them before.
    const migrated = await migratedNodes(s);
    step(`kubectl cilium-migrate finalize --apply --yes --cleanup-nodes ${flags('finalize')}   (helm upgrade to the final values, agents restarted, Flannel removed)`);
    await finalizeStep(s, indent);
    await afterStep(s, tally, o);

    const nginx = await podsPerOverlay(s, 'app=nginx');
    const all = await podsPerOverlay(s);
    const probes = tally.totals();
    const flannel = await flannelInstalled(s);
    const agents = await ciliumStatusSettled(s);
    // After finalize's helm upgrade: Cilium still on the layout's pool and port.
    const config = (await api<{ data?: Record<string, string> }>(s.kube, 'GET', `/api/v1/namespaces/${layout.ciliumNamespace}/configmaps/cilium-config`)).data ?? {};
    const overlayKept = config['cluster-pool-ipv4-cidr'] === layout.ciliumCidr && config['tunnel-port'] === String(layout.ciliumTunnelPort);
    const cniConfigs = lab.nodes.map((n) => `${n.name}: ${execFileSync(join(o.stateDir, 'bin', 'docker'), ['exec', n.name, 'ls', '/etc/cni/net.d'], { encoding: 'utf8' }).trim().split('\n').join(' ')}`);
    step('summary');
    indent(`layout: ${lab.nodes.length} nodes; ${describeLayout(layout)}`);
    indent(`nodes migrated: ${migrated.length} of ${lab.nodes.length} (${migrated.join(', ')})`);
    indent(`cilium-config in ${layout.ciliumNamespace} after the helm upgrade: cluster-pool-ipv4-cidr ${config['cluster-pool-ipv4-cidr'] ?? '-'}, tunnel-port ${config['tunnel-port'] ?? '-'}, custom-cni-conf ${config['custom-cni-conf'] ?? '-'}`);
    indent(`pods per overlay: ${all.cilium} in the Cilium CIDR (${layout.ciliumCidr}), ${all.legacy} on the legacy network; nginx: ${nginx.cilium} of ${nginx.cilium + nginx.legacy} in the Cilium CIDR`);
    for (const p of nginx.pods) indent(`  ${p.name} on ${p.node}: ${p.ip}`);
    indent(`probes sent: ${probes.sent}, failed: ${probes.failed}`);
    indent(`Flannel: ${flannel ? 'still installed' : 'removed'}; CNI configs: ${cniConfigs.join('; ')}`);
    for (const a of agents) indent(`cilium-dbg status --brief on ${a.node} (${layout.ciliumNamespace}/${a.pod}): ${a.status}`);
    indent(`total time: ${((Date.now() - started) / 1000).toFixed(0)}s`);
    const ok = migrated.length === lab.nodes.length && nginx.legacy === 0 && nginx.cilium > 0 && !flannel && overlayKept
      && agents.length === lab.nodes.length && agents.every((a) => /^OK\b/.test(a.status));
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


// The lab's long-running process (`lab up` leaves it running): the control plane, the nodes as
// network namespaces on a private underlay, Flannel's overlay, the lab runtime for the pods, and
// a control socket through which `lab status`, `lab restart-node` and `lab down` reach it.
//
// Crossing between the host and the lab goes through Unix sockets only, never a route:
//   API server -> pods: its cluster egress, an HTTP CONNECT proxy inside the control-plane node
//     (lab/egress-proxy.ts);
//   pods -> API server: 10.96.0.1:443 (the kubernetes Service address) is a listener inside the
//     control-plane node that pipes to a Unix socket served here, which connects to the API
//     server on the host's loopback.
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { connect as netConnect } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeAdminKubeconfig } from './admin-kubeconfig.js';
import { kindNodes } from './cluster-objects.js';
import { startControlPlane, type ControlPlane } from './control-plane.js';
import { api, labClient, type LabClient } from './lab-api.js';
import { ciliumNodeObjects, ciliumObjects, flannelConflist, flannelObjects } from './lab-install.js';
import { LabNodes } from './lab-nodes.js';
import { createTopology, type Topology } from './netns.js';
import { underlayIp } from './overlay-net.js';
import { forward } from './programs/tcp-forward.js';
import { LabRuntime, type RuntimeNode } from './runtime.js';
import type { LabPrograms } from './runtime-rules.js';
import { waitUntil } from './wait.js';

/** Default state directory: sockets, the kubeconfig, the nodes' files (on disk: real nodes hold their images there). */
export const defaultStateDir = '/var/lib/cilium-migrate-lab';
/** The kubernetes Service address: where pods reach the API server (it is in the serving certificate). */
export const labApiHost = '10.96.0.1';
export const labApiPort = 443;

export interface DaemonOptions {
  stateDir: string;
  nodes: number;
  /** Directory of the bundled programs (dist/). */
  distDir: string;
  log: (line: string) => void;
}

export interface LabStatus {
  ready: boolean;
  /** `real` for the real-node lab (lab/kind-daemon.ts), absent for the emulated one. */
  runtime?: 'real';
  /** The real lab's resource prefix (lab/node/lab-resources.ts). */
  prefix?: string;
  pid: number;
  kubeconfig: string;
  server: string;
  startedAt: string;
  /** The namespace of the underlay bridge. */
  underlayNetns: string;
  nodes: { name: string; netns: string; role: string; internalIp: string; ready: boolean; bootID: string; podCIDR: string; cni: string; pods: { legacy: number; cilium: number; host: number } }[];
}

/** Paths inside a state directory. */
export function statePaths(stateDir: string) {
  return {
    control: join(stateDir, 'control.sock'),
    egress: join(stateDir, 'egress.sock'),
    api: join(stateDir, 'api.sock'),
    kubeconfig: join(stateDir, 'kubeconfig'),
    pid: join(stateDir, 'daemon.pid'),
    log: join(stateDir, 'daemon.log'),
    nodes: join(stateDir, 'nodes'),
  };
}

/** The directory holding the bundled programs, next to the running lab bundle or built from the repository. */
export function defaultDistDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  // dist/lab.js runs from dist/; lab/daemon.ts (tests, tsx) from lab/.
  return here.endsWith('/dist') ? here : join(here, '..', 'dist');
}

/** Brings the lab up and serves the control socket until shut down; resolves when it has been torn down. */
export async function runDaemon(o: DaemonOptions): Promise<void> {
  const paths = statePaths(o.stateDir);
  mkdirSync(o.stateDir, { recursive: true, mode: 0o700 });
  writeFileSync(paths.pid, `${process.pid}\n`);
  const startedAt = new Date();
  const programs: LabPrograms = {
    agentJs: join(o.distDir, 'agent.js'),
    ciliumAgentJs: join(o.distDir, 'lab', 'cilium-agent.js'),
    flanneldJs: join(o.distDir, 'lab', 'flanneld.js'),
    nginxJs: join(o.distDir, 'lab', 'nginx.js'),
    trafficCheckerJs: join(o.distDir, 'lab', 'traffic-checker.js'),
  };
  const names = kindNodes(o.nodes - 1);

  let cp: ControlPlane | undefined;
  let topo: Topology | undefined;
  let labNodes: LabNodes | undefined;
  let runtime: LabRuntime | undefined;
  let apiForward: { close(): Promise<void> } | undefined;
  let control: Server | undefined;
  let ready = false;
  let resolveShutdown: () => void = () => {};
  const shutdownRequested = new Promise<void>((r) => (resolveShutdown = r));

  const teardown = async () => {
    const t0 = Date.now();
    const took = () => `${((Date.now() - t0) / 1000).toFixed(1)}s`;
    o.log('tearing the lab down');
    await runtime?.stop().catch((err: Error) => o.log(`runtime stop: ${err.message}`));
    labNodes?.stop();
    o.log(`pods stopped (${took()})`);
    await topo?.destroy().catch((err: Error) => o.log(`topology: ${err.message}`));
    await apiForward?.close().catch(() => undefined);
    o.log(`namespaces deleted (${took()})`);
    await cp?.stop().catch((err: Error) => o.log(`control plane: ${err.message}`));
    o.log(`control plane stopped (${took()})`);
    await new Promise<void>((r) => (control ? control.close(() => r()) : r()));
    for (const f of [paths.control, paths.egress, paths.api, paths.kubeconfig, paths.pid]) rmSync(f, { force: true });
    rmSync(paths.nodes, { recursive: true, force: true });
    rmSync(join(o.stateDir, 'pods'), { recursive: true, force: true });
    o.log('lab down');
  };
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => resolveShutdown());

  const statusOf = (): LabStatus => {
    const summary = new Map(runtime?.summary().map((s) => [s.node, s]) ?? []);
    return {
      ready,
      pid: process.pid,
      kubeconfig: paths.kubeconfig,
      server: cp?.server ?? '',
      startedAt: startedAt.toISOString(),
      underlayNetns: topo?.underlayNetns ?? '',
      nodes: [...(labNodes?.nodes.values() ?? [])].map((n) => ({
        name: n.name, netns: topo?.nodes.find((t) => t.name === n.name)?.netns ?? '', role: n.role, internalIp: n.internalIp, ready: n.ready, bootID: n.bootID, podCIDR: n.podCIDR,
        cni: summary.get(n.name)?.cni ?? '', pods: summary.get(n.name)?.pods ?? { legacy: 0, cilium: 0, host: 0 },
      })),
    };
  };

  // The control socket first, so `lab up` can follow progress and `lab down` can stop a lab half up.
  rmSync(paths.control, { force: true });
  control = createHttpServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://lab');
    const reply = (code: number, body: unknown) => res.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    if (req.method === 'GET' && url.pathname === '/status') return reply(200, statusOf());
    if (req.method === 'POST' && url.pathname === '/shutdown') {
      reply(202, { stopping: true });
      resolveShutdown();
      return;
    }
    if (req.method === 'POST' && url.pathname === '/restart-node') {
      const node = url.searchParams.get('node') ?? '';
      if (!runtime || !ready) return reply(409, { error: 'the lab is not up yet' });
      const before = labNodes?.nodes.get(node)?.bootID;
      runtime.restartNode(node).then(
        (r) => reply(200, { node, pods: r.pods, bootIDBefore: before, bootIDAfter: labNodes?.nodes.get(node)?.bootID }),
        (err: Error) => reply(400, { error: err.message }),
      );
      return;
    }
    if (req.method === 'POST' && url.pathname === '/udp-port') {
      // Fault injection: drop (or stop dropping) incoming UDP to a port on a node, as a broken overlay would.
      const node = topo?.nodes.find((n) => n.name === url.searchParams.get('node'));
      const port = Number(url.searchParams.get('port'));
      const drop = url.searchParams.get('action') === 'drop';
      if (!topo || !node) return reply(400, { error: `no lab node ${url.searchParams.get('node') ?? ''}` });
      if (!Number.isInteger(port) || port < 1 || port > 65535) return reply(400, { error: `bad port ${url.searchParams.get('port') ?? ''}` });
      (drop ? topo.dropUdpPort(node.index, port) : topo.restoreUdpPort(node.index, port)).then(
        () => reply(200, { node: node.name, port, dropped: drop }),
        (err: Error) => reply(500, { error: err.message }),
      );
      return;
    }
    reply(404, { error: `no ${req.method} ${url.pathname}` });
  });
  await new Promise<void>((resolve, reject) => control!.once('error', reject).listen(paths.control, resolve));
  chmodSync(paths.control, 0o600);

  try {
    o.log(`starting the control plane`);
    const binDir = execFileSync(join(o.distDir, '..', 'lab', 'bins', 'build.sh'), ['--dir'], { encoding: 'utf8' }).trim();
    cp = await startControlPlane({ binDir, clusterEgressSocket: paths.egress, kwok: false, progress: o.log });
    const kube = labClient(cp.kubeconfig);
    // The CRD manifests sit in the repository next to dist/ (this may run bundled).
    await cp.kubectl(['apply', '--server-side', '-f', join(o.distDir, '..', 'lab', 'crds', 'cilium.yaml')]);
    await cp.kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd/ciliumnodeconfigs.cilium.io', 'crd/ciliumnodes.cilium.io']);
    writeAdminKubeconfig(cp, paths.kubeconfig, { cluster: 'cilium-migrate-lab', user: 'lab-admin' });

    o.log(`creating ${o.nodes} nodes as network namespaces on a private underlay`);
    // No overlay yet: Flannel's and Cilium's agents build theirs from what the API says.
    topo = await createTopology(o.nodes, { nodeNames: names.map((n) => n.name), overlays: [] });
    labNodes = new LabNodes(kube, o.log);
    await labNodes.register(names.map((node, i) => ({ node, internalIp: underlayIp(i) })));

    // The API server's ways in and out of the lab, both through the control-plane node.
    const cpNs = topo.nodes[0]!.netns;
    rmSync(paths.api, { force: true });
    const apiPort = Number(new URL(cp.server).port);
    apiForward = await forward(paths.api, () => netConnect({ host: '127.0.0.1', port: apiPort }));
    await mustExec(topo, cpNs, ['ip', 'addr', 'add', `${labApiHost}/32`, 'dev', 'lo']);
    for (const n of topo.nodes.slice(1)) await mustExec(topo, n.netns, ['ip', 'route', 'add', `${labApiHost}/32`, 'via', underlayIp(0), 'dev', 'eth0']);
    topo.spawn(cpNs, [process.execPath, join(o.distDir, 'lab', 'egress-proxy.js'), '--socket', paths.egress], undefined, join(o.stateDir, 'egress-proxy.log'));
    topo.spawn(cpNs, [process.execPath, join(o.distDir, 'lab', 'tcp-forward.js'), '--listen', `${labApiHost}:${labApiPort}`, '--unix', paths.api], undefined, join(o.stateDir, 'api-forward.log'));

    // kubelet's log API on every node, for kubectl logs.
    mkdirSync(join(o.stateDir, 'pods'), { recursive: true });
    for (const n of topo.nodes) {
      mkdirSync(join(paths.nodes, n.name), { recursive: true });
      topo.spawn(n.netns, [
        process.execPath, join(o.distDir, 'lab', 'kubelet-api.js'), '--listen', `${n.underlayIp}:10250`, '--pods', join(o.stateDir, 'pods'),
        '--cert', cp.pki.serverCert, '--key', cp.pki.serverKey, '--probe-socket', join(paths.nodes, n.name, 'kubelet.sock'),
      ], undefined, join(o.stateDir, `kubelet-api-${n.name}.log`));
    }
    const nodes: RuntimeNode[] = topo.nodes.map((n) => ({ name: n.name, index: n.index, netns: n.netns, internalIp: n.underlayIp, hostRoot: join(paths.nodes, n.name), probeSocket: join(paths.nodes, n.name, 'kubelet.sock') }));
    for (const n of nodes) {
      const cniDir = join(n.hostRoot, 'etc', 'cni', 'net.d');
      mkdirSync(cniDir, { recursive: true });
      writeFileSync(join(cniDir, '10-flannel.conflist'), JSON.stringify(flannelConflist, null, 2) + '\n');
    }

    o.log('installing Flannel (VXLAN on UDP 8472) and Cilium (migration mode: VXLAN on UDP 8473, no CNI config yet)');
    await applyAll(cp, [...flannelObjects(), ...ciliumObjects(), ...ciliumNodeObjects(nodes)]);
    runtime = new LabRuntime({ kube, topology: topo, labNodes, nodes, stateDir: o.stateDir, caFile: cp.pki.caCert, apiHost: labApiHost, apiPort: labApiPort, programs, log: o.log });
    await runtime.start();
    await waitDaemonSets(kube, [['kube-flannel', 'kube-flannel-ds'], ['kube-system', 'cilium']], o.nodes, o.log).catch((err: Error) => {
      throw new Error(`${err.message}\n${notReadyPods(join(o.stateDir, 'pods'))}`);
    });
    ready = true;
    o.log(`lab up in ${((Date.now() - startedAt.getTime()) / 1000).toFixed(1)}s: ${names.map((n) => n.name).join(', ')}; kubeconfig ${paths.kubeconfig}`);
  } catch (err) {
    o.log(`lab up failed: ${(err as Error).message}`);
    await teardown();
    throw err;
  }
  await shutdownRequested;
  await teardown();
}

/** The last log lines of every container without a ready mark, for a failed start. */
function notReadyPods(podsDir: string): string {
  const lines: string[] = [];
  for (const dir of existsSync(podsDir) ? readdirSync(podsDir) : []) {
    for (const f of readdirSync(join(podsDir, dir)).filter((x) => x.endsWith('.log'))) {
      if (existsSync(join(podsDir, dir, f.replace(/\.log$/, '.ready')))) continue;
      if (readFileSync(join(podsDir, dir, f), 'utf8').trim() === '') continue;
      const tail = readFileSync(join(podsDir, dir, f), 'utf8').trimEnd().split('\n').slice(-3).join('\n    ');
      lines.push(`  ${dir}/${f}:\n    ${tail}`);
    }
  }
  return lines.length ? `containers not ready:\n${lines.join('\n')}` : 'no container log';
}

async function mustExec(topo: Topology, netns: string, argv: string[]): Promise<void> {
  const r = await topo.exec(netns, argv);
  if (r.code !== 0) throw new Error(`${argv.join(' ')} in ${netns}: ${r.stderr.trim()}`);
}

async function applyAll(cp: ControlPlane, objects: Record<string, unknown>[]): Promise<void> {
  await cp.kubectl(['apply', '--server-side', '--field-manager=cilium-migrate-lab', '-f', '-'], { input: objects.map((o) => JSON.stringify(o)).join('\n') });
}

async function waitDaemonSets(kube: LabClient, sets: [string, string][], count: number, log: (line: string) => void, timeoutMs = 120_000): Promise<void> {
  let last = '';
  await waitUntil('the DaemonSets Ready', async () => {
    const states = await Promise.all(sets.map(async ([ns, name]) => {
      const ds = await api<{ status?: { numberReady?: number } }>(kube, 'GET', `/apis/apps/v1/namespaces/${ns}/daemonsets/${name}`);
      return { name: `${ns}/${name}`, ready: ds.status?.numberReady ?? 0 };
    }));
    const line = states.map((s) => `${s.name} ${s.ready}/${count}`).join(', ');
    if (states.every((s) => s.ready === count)) return true;
    if (line !== last) log(`waiting for ${line} Ready`);
    last = line;
    return undefined;
  }, timeoutMs, 500).catch((err: Error) => {
    throw new Error(`${err.message}: ${last}`);
  });
}


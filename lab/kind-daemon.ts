// The real-node lab's long-running process (`lab up` starts it and leaves it running): it brings
// the kind-like cluster up (lab/kind-lab.ts) and serves its control socket (control.sock in the
// state directory) for `lab status`, `lab restart-node`, `lab reboot-node`, the faults, the
// docker shim's `restart` and `inspect`, and `lab down`. Each node also gets a socket of its own
// (bound into the node as /run/cilium-migrate-lab/node.sock), through which the node's `systemctl
// reboot` asks for its own reboot, and nothing else.
//
// Everything the lab starts dies with this process (parent-death signals); what a SIGKILL of it
// leaves (namespaces, cgroups, the state directory) is removed by the next `lab up` or `lab down`.
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { cidrContains } from '../lib/cidr.js';
import { statePaths, type LabStatus } from './daemon.js';
import { api } from './lab-api.js';
import { KindLab, kindPaths, type LegacyCni } from './kind-lab.js';
import { defaultLayout, type LabLayout } from './layout.js';

export interface KindDaemonOptions {
  stateDir: string;
  nodes: number;
  /** Pod CIDRs, tunnel ports, Cilium's namespace (default: the seed's). */
  layout?: LabLayout;
  distDir: string;
  log: (line: string) => void;
  nginxReplicas?: number;
  /** Install Cilium in migration mode (default true). */
  cilium?: boolean;
  /** The legacy CNI (default flannel). */
  legacy?: LegacyCni;
}

interface PodItem {
  spec: { nodeName?: string; hostNetwork?: boolean };
  status: { podIP?: string; phase?: string };
}

/** Brings the lab up and serves until shut down; resolves when it has been torn down. */
export async function runKindDaemon(o: KindDaemonOptions): Promise<void> {
  const paths = statePaths(o.stateDir);
  const layout = o.layout ?? defaultLayout;
  writeFileSync(paths.pid, `${process.pid}\n`);
  const startedAt = new Date();
  let lab: KindLab | undefined;
  let ready = false;
  let failed: string | undefined;
  const nodeSockets: Server[] = [];
  const starting = new AbortController();
  let resolveShutdown: () => void = () => {};
  const shutdownRequested = new Promise<void>((r) => (resolveShutdown = () => {
    // A shutdown while the lab comes up stops its start at the next wait.
    starting.abort();
    r();
  }));
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => resolveShutdown());

  const status = async (): Promise<LabStatus & { runtime: 'real'; prefix: string; failed?: string; nodes: (LabStatus['nodes'][number] & { startedAt: string; running: boolean })[] }> => {
    const nodes = lab?.status() ?? [];
    let api_: { nodes: Map<string, { ready: boolean; podCIDR: string }>; pods: PodItem[] } = { nodes: new Map(), pods: [] };
    if (lab && ready) {
      try {
        const list = await api<{ items: { metadata: { name: string }; spec?: { podCIDR?: string }; status?: { conditions?: { type: string; status: string }[] } }[] }>(lab.kube, 'GET', '/api/v1/nodes');
        const pods = await api<{ items: PodItem[] }>(lab.kube, 'GET', '/api/v1/pods');
        api_ = {
          nodes: new Map(list.items.map((n) => [n.metadata.name, { ready: n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false, podCIDR: n.spec?.podCIDR ?? '' }])),
          pods: pods.items,
        };
      } catch {
        // status without the API's view
      }
    }
    return {
      ready, runtime: 'real', prefix: lab?.prefix ?? '', ...(failed ? { failed } : {}),
      pid: process.pid,
      kubeconfig: paths.kubeconfig,
      server: lab?.cp.server ?? '',
      startedAt: startedAt.toISOString(),
      underlayNetns: lab ? `${lab.prefix}-ul` : '',
      layout,
      legacy: o.legacy ?? 'flannel',
      nodes: nodes.map((n) => {
        const pods = api_.pods.filter((p) => p.spec.nodeName === n.name && p.status.phase === 'Running');
        const host = pods.filter((p) => p.spec.hostNetwork).length;
        const cilium = pods.filter((p) => !p.spec.hostNetwork && p.status.podIP && cidrContains(layout.ciliumCidr, p.status.podIP)).length;
        return {
          name: n.name, netns: n.netns, role: n.role, internalIp: n.internalIp, bootID: n.bootID, startedAt: n.startedAt, running: n.running,
          ready: api_.nodes.get(n.name)?.ready ?? false, podCIDR: api_.nodes.get(n.name)?.podCIDR ?? '',
          cni: cniConfigOf(o.stateDir, n.name), pods: { legacy: pods.length - host - cilium, cilium, host },
        };
      }),
    };
  };

  const control = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://lab');
    const reply = (code: number, body: unknown) => res.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    const nodeName = url.searchParams.get('node') ?? '';
    if (req.method === 'GET' && url.pathname === '/status') return void status().then((s) => reply(200, s));
    if (req.method === 'POST' && url.pathname === '/shutdown') {
      reply(202, { stopping: true });
      return resolveShutdown();
    }
    if (!lab || !ready) return reply(409, { error: failed ? `the lab failed to come up: ${failed}` : 'the lab is not up yet' });
    if (!lab.nodes.has(nodeName) && url.pathname !== '/udp-port') return reply(404, { error: `no lab node ${nodeName}` });
    if (req.method === 'GET' && url.pathname === '/inspect') {
      const n = lab.nodeStatus(lab.node(nodeName));
      const pid = lab.node(nodeName).pid1() ?? 0;
      return reply(200, {
        Id: `${lab.prefix}-${n.name}`, Name: `/${n.name}`,
        State: { Status: n.running ? 'running' : 'exited', Running: n.running, Pid: pid, StartedAt: n.startedAt, FinishedAt: '0001-01-01T00:00:00Z' },
        Config: { Hostname: n.name, Image: 'localhost/cilium-migrate-lab/node' },
        NetworkSettings: { Networks: { kind: { IPAddress: n.internalIp } } },
      });
    }
    if (req.method === 'POST' && (url.pathname === '/restart-node' || url.pathname === '/reboot-node')) {
      const reboot = url.pathname === '/reboot-node';
      const before = lab.node(nodeName).bootId();
      o.log(`${reboot ? 'rebooting' : 'restarting'} ${nodeName}`);
      (reboot ? lab.rebootNode(nodeName) : lab.restartNode(nodeName)).then(
        (n) => {
          o.log(`${nodeName} ${reboot ? 'rebooted' : 'restarted'}: bootID ${before.slice(0, 8)} -> ${n.bootID.slice(0, 8)}`);
          reply(200, { node: nodeName, bootIDBefore: before, bootIDAfter: n.bootID, startedAt: n.startedAt, pods: 0 });
        },
        (err: Error) => reply(500, { error: err.message }),
      );
      return;
    }
    if (req.method === 'POST' && url.pathname === '/exec') {
      // `docker exec NODE CMD...`: runs in the node's namespaces and root, without a terminal.
      let body = '';
      req.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => {
        let argv: unknown;
        try {
          argv = JSON.parse(body);
        } catch {
          return reply(400, { error: 'the body must be a JSON array of strings' });
        }
        if (!Array.isArray(argv) || argv.length === 0 || !argv.every((a) => typeof a === 'string')) return reply(400, { error: 'the body must be a JSON array of strings' });
        lab!.node(nodeName).exec(argv as string[], 300_000).then((r) => reply(200, r), (err: Error) => reply(500, { error: err.message }));
      });
      return;
    }
    if (req.method === 'POST' && url.pathname === '/udp-port') {
      const port = Number(url.searchParams.get('port'));
      if (!lab.nodes.has(nodeName)) return reply(400, { error: `no lab node ${nodeName}` });
      if (!Number.isInteger(port) || port < 1 || port > 65535) return reply(400, { error: `bad port ${url.searchParams.get('port') ?? ''}` });
      const drop = url.searchParams.get('action') === 'drop';
      lab.udpPort(nodeName, port, drop).then(() => reply(200, { node: nodeName, port, dropped: drop }), (err: Error) => reply(500, { error: err.message }));
      return;
    }
    reply(404, { error: `no ${req.method} ${url.pathname}` });
  });
  rmSync(paths.control, { force: true });
  await new Promise<void>((resolve, reject) => control.once('error', reject).listen(paths.control, resolve));
  chmodSync(paths.control, 0o600);

  try {
    const groups = ['control-plane', 'node', 'cilium-chart', 'cilium', ...(o.legacy === 'calico' ? ['calico'] : [])];
    const dirs = Object.fromEntries(groups.map((group) => {
      const dir = execFileSync(join(o.distDir, '..', 'lab', 'bins', 'build.sh'), ['--dir', group], { encoding: 'utf8' }).trim();
      if (!existsSync(join(dir, '.complete'))) throw new Error(`the ${group} binaries are not built (${dir}); build them with: make ${group === 'calico' ? 'calico-bins' : 'bins'}`);
      return [group, dir];
    })) as Record<'control-plane' | 'node' | 'cilium-chart' | 'cilium' | 'calico', string>;
    lab = await KindLab.up({
      stateDir: o.stateDir, nodes: o.nodes, layout, distDir: o.distDir, log: o.log, nginxReplicas: o.nginxReplicas ?? 10, cilium: o.cilium ?? true, signal: starting.signal,
      binDir: dirs['control-plane'], nodeBinDir: dirs.node, ciliumBinDir: dirs.cilium, chartDir: dirs['cilium-chart'],
      ...(o.legacy === 'calico' ? { legacy: o.legacy, calicoBinDir: dirs.calico } : {}),
    });
    for (const n of lab.nodes.values()) nodeSockets.push(await nodeSocket(join(n.o.dir, 'lab', 'node.sock'), () => {
      o.log(`${n.name} asked for its reboot (systemctl reboot)`);
      void lab!.rebootNode(n.name).then((s) => o.log(`${n.name} rebooted: bootID ${s.bootID.slice(0, 8)}`), (err: Error) => o.log(`reboot of ${n.name} failed: ${err.message}`));
    }));
    ready = true;
    o.log(`lab up in ${((Date.now() - startedAt.getTime()) / 1000).toFixed(1)}s: ${[...lab.nodes.keys()].join(', ')}; kubeconfig ${paths.kubeconfig}; docker for its nodes: ${kindPaths(o.stateDir).bin}`);
  } catch (err) {
    failed = (err as Error).message;
    o.log(`lab up failed: ${failed}`);
    await teardown();
    throw err;
  }
  await shutdownRequested;
  await teardown();

  async function teardown(): Promise<void> {
    const t0 = Date.now();
    o.log('tearing the lab down');
    for (const s of nodeSockets) s.close();
    const left = lab ? await lab.down() : [];
    if (left.length > 0) o.log(`left behind: ${left.join(', ')}`);
    await new Promise<void>((r) => control.close(() => r()));
    for (const f of [paths.control, paths.pid, paths.kubeconfig]) rmSync(f, { force: true });
    o.log(`lab down (${((Date.now() - t0) / 1000).toFixed(1)}s)`);
  }
}

/** A node's own socket: POST /reboot is all it serves. */
async function nodeSocket(path: string, onReboot: () => void): Promise<Server> {
  rmSync(path, { force: true });
  const server = createServer((req, res) => {
    if (req.method === 'POST' && req.url === '/reboot') {
      res.writeHead(202).end('rebooting\n');
      // After the answer: the caller is inside the node and goes down with it.
      setTimeout(onReboot, 100);
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(path, resolve));
  return server;
}

/** The CNI config a node's containerd uses now: the first file by name in its /etc/cni/net.d. */
function cniConfigOf(stateDir: string, node: string): string {
  const dir = join(kindPaths(stateDir).nodes, node, 'upper', 'etc', 'cni', 'net.d');
  try {
    return readdirSync(dir).filter((f) => /\.(conf|conflist|json)$/.test(f)).sort()[0] ?? '';
  } catch {
    return '';
  }
}

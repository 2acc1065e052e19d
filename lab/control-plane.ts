// A private, real Kubernetes control plane for the tests and the lab: etcd (mutual TLS with a CA of
// its own, so no local process can open it without the API server's key), kube-apiserver (RBAC
// on, client-certificate authentication), kube-controller-manager (node CIDR allocation, as kind
// does), kube-scheduler and optionally kwok for simulated nodes. Every process, port and file it
// makes is gone after stop(), and also after SIGINT/SIGTERM or an uncaught error (lab/process.ts).
//
// With `netns`, every process runs inside that network namespace (the lab's, on its underlay) and
// listens on fixed ports there; this host reaches it only through a CONNECT proxy on a Unix socket
// inside the namespace (lab/netns-gateway.ts): `server` is then a forwarder on 127.0.0.1.
import { execFileSync, execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { forwardThrough, getText, type Forwarder } from './netns-gateway.js';
import { createEtcdPki, createPki, issueClientCert, type Pki } from './pki.js';
import { forgetDir, pidAlive, removeOnExit, startProcess, type ManagedProcess } from './process.js';
import { waitUntil } from './wait.js';

const execFileAsync = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));

/** Prefix of every control plane's temporary directory; the leftover check looks for it. */
export const rootDirPrefix = 'cilium-migrate-cp-';

export interface ControlPlaneOptions {
  /** Where the binaries are; default: the cache directory lab/bins/build.sh reports. */
  binDir?: string;
  /** Pod network the controller manager allocates node CIDRs from (kind's default). */
  clusterCidr?: string;
  nodeCidrMaskSize?: number;
  serviceCidr?: string;
  /** Run kwok for nodes annotated kwok.x-k8s.io/node=fake (default true). */
  kwok?: boolean;
  /**
   * kwok Stage files to run instead of the default ones (kwok's own fast stages, which
   * lab/bins/build.sh copies into kwok-stages/, and lab/kwok-stages; `kwokStageFiles(binDir)` lists them).
   */
  kwokStages?: string[];
  /** Address the API server listens on and advertises (default 127.0.0.1). */
  address?: string;
  /**
   * A Unix socket through which the API server reaches pods and nodes (its "cluster" egress, as
   * with Konnectivity): HTTP CONNECT to whatever listens there (lab/egress-proxy.ts, run inside the
   * network the pods live in). Without it the API server dials pod IPs from this host's namespace.
   */
  clusterEgressSocket?: string;
  /**
   * Run inside this network namespace (`ip netns` name), the API server on `address`:6443 (the
   * lab's underlay). `gateway` is the program that serves HTTP CONNECT on a Unix socket (default:
   * dist/lab/egress-proxy.js, which `make build` writes).
   */
  netns?: { name: string; address: string; gateway?: string[] };
  /**
   * Real kubelets will register (the lab's nodes): the Node authorizer and NodeRestriction as on
   * kubeadm's clusters, a client certificate for the API server's calls to kubelets, and kubelets
   * reached at their InternalIP.
   */
  kubelets?: boolean;
  /** Progress lines (default: none). */
  progress?: (line: string) => void;
}

export interface ControlPlane {
  /** Admin (system:masters) kubeconfig. */
  readonly kubeconfig: string;
  /** https://ADDRESS:PORT of the API server. */
  readonly server: string;
  readonly rootDir: string;
  readonly binDir: string;
  readonly pki: Pki;
  /** Ports this control plane listens on. */
  readonly ports: Readonly<Record<string, number>>;
  /** PIDs of every process it started that is still running. */
  pids(): number[];
  /** Runs the built kubectl with the admin kubeconfig. */
  kubectl(args: string[], options?: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number }): Promise<{ stdout: string; stderr: string }>;
  /** GET a JSON path on the API server as admin. */
  get<T = unknown>(path: string): Promise<T>;
  /** Writes a kubeconfig for a user with a client certificate in `groups`. */
  userKubeconfig(name: string, groups?: string[]): Promise<string>;
  /** Stops and starts the API server (same port, same data), waiting until it is ready again. */
  restartApiserver(downMs?: number): Promise<void>;
  /** Stops everything and removes every file; safe to call twice. */
  stop(): Promise<void>;
  /** With `netns`: the API server's address and port as the namespace's neighbours reach it. */
  readonly internalServer?: string;
}

/** The directory lab/bins/build.sh builds into (it may not exist yet). */
export function defaultBinDir(): string {
  return execFileSync(join(here, 'bins', 'build.sh'), ['--dir'], { encoding: 'utf8' }).trim();
}

/** The default kwok Stage files: kwok's own fast stages (copied by lab/bins/build.sh), then ours (lab/kwok-stages). */
export function kwokStageFiles(binDir: string): string[] {
  return [
    ...readdirSync(join(binDir, 'kwok-stages')).map((f) => join(binDir, 'kwok-stages', f)),
    ...readdirSync(join(here, 'kwok-stages')).map((f) => join(here, 'kwok-stages', f)),
  ];
}

/** Throws a clear message when the binaries have not been built. */
export function requireBinaries(binDir: string): void {
  if (!existsSync(join(binDir, '.complete'))) {
    throw new Error(`control-plane binaries not found in ${binDir}; build them with "make bins" (lab/bins/build.sh)`);
  }
}

/** A free TCP port on 127.0.0.1. */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolvePort(address.port) : reject(new Error('no port'))));
    });
  });
}

/**
 * Removes what control planes of dead processes left behind (a runner that was SIGKILLed):
 * their directories, and any process still running from one.
 */
export function reapStaleControlPlanes(): void {
  for (const entry of readdirSync(tmpdir())) {
    if (!entry.startsWith(rootDirPrefix)) continue;
    const dir = join(tmpdir(), entry);
    const owner = Number(readFileOr(join(dir, 'owner.pid'), '0'));
    if (owner > 0 && pidAlive(owner)) continue;
    for (const pid of pidsMentioning(dir)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

/** PIDs of processes whose command line mentions `text` (from /proc). */
export function pidsMentioning(text: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    const cmdline = readFileOr(`/proc/${entry}/cmdline`, '');
    if (cmdline.includes(text)) pids.push(Number(entry));
  }
  return pids;
}

/** Starts a control plane and waits until it serves, schedules and has its default ServiceAccount. */
export async function startControlPlane(options: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const progress = options.progress ?? (() => {});
  const binDir = options.binDir ?? defaultBinDir();
  requireBinaries(binDir);
  reapStaleControlPlanes();
  const address = options.address ?? '127.0.0.1';
  const clusterCidr = options.clusterCidr ?? '10.244.0.0/16';
  const serviceCidr = options.serviceCidr ?? '10.96.0.0/16';
  const rootDir = mkdtempSync(join(tmpdir(), rootDirPrefix));
  removeOnExit(rootDir);
  writeFileSync(join(rootDir, 'owner.pid'), String(process.pid));
  for (const d of ['pki', 'logs', 'etcd', 'apiserver', 'controller-manager', 'scheduler']) mkdirSync(join(rootDir, d));

  const procs = new Map<string, ManagedProcess>();
  const started = Date.now();
  const log = (name: string) => join(rootDir, 'logs', `${name}.log`);
  const bin = (name: string) => join(binDir, name);
  const netns = options.netns;
  // Inside a namespace of our own nothing else listens: fixed ports, as on a kubeadm node.
  const start = (name: string, command: string, args: string[], env?: NodeJS.ProcessEnv) =>
    startProcess(name, netns ? 'nsenter' : command, netns ? [`--net=/run/netns/${netns.name}`, '--', command, ...args] : args, log(name), env);
  let gatewaySocket: string | undefined;
  let forwarder: Forwarder | undefined;
  const fetchText = (url: string, tls: { ca?: Buffer; cert?: Buffer; key?: Buffer; insecure?: boolean } = {}) => getText(url, { ...tls, gateway: gatewaySocket });

  try {
    const ports = netns
      ? { etcdClient: 2379, etcdPeer: 2380, apiserver: 6443, controllerManager: 10257, scheduler: 10259, kwok: 10247 }
      : {
          etcdClient: await freePort(),
          etcdPeer: await freePort(),
          apiserver: await freePort(address),
          controllerManager: await freePort(),
          scheduler: await freePort(),
          kwok: await freePort(),
        };
    const apiAddress = netns?.address ?? address;
    const internalServer = `https://${apiAddress}:${ports.apiserver}`;
    if (netns) {
      gatewaySocket = join(rootDir, 'gateway.sock');
      const gateway = netns.gateway ?? [process.execPath, join(here, '..', 'dist', 'lab', 'egress-proxy.js')];
      if (!netns.gateway && !existsSync(gateway[1]!)) throw new Error(`${gateway[1]} is missing; build it with "make build"`);
      procs.set('gateway', start('gateway', gateway[0]!, [...gateway.slice(1), '--socket', gatewaySocket]));
      await waitFor('the namespace gateway', procs.get('gateway')!, 30_000, async () => existsSync(gatewaySocket!));
      forwarder = await forwardThrough(gatewaySocket, { host: apiAddress, port: ports.apiserver });
    }
    const server = forwarder ? `https://127.0.0.1:${forwarder.port}` : internalServer;
    const pki = await createPki(join(rootDir, 'pki'), [...new Set([apiAddress, '127.0.0.1', firstServiceIp(serviceCidr)])], ['localhost', 'kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster.local']);
    const etcdPki = await createEtcdPki(join(rootDir, 'pki'), ['127.0.0.1']);
    const admin = await issueClientCert(pki, 'admin', ['system:masters']);
    const kubeconfig = join(rootDir, 'admin.kubeconfig');
    writeKubeconfig(kubeconfig, server, pki.caCert, 'admin', admin.cert, admin.key);
    // The components in the namespace reach the API server there, not through the forwarder.
    const componentKubeconfig = join(rootDir, 'components.kubeconfig');
    writeKubeconfig(componentKubeconfig, internalServer, pki.caCert, 'admin', admin.cert, admin.key);
    const adminTls = { ca: readFileSync(pki.caCert), cert: readFileSync(admin.cert), key: readFileSync(admin.key) };

    // Client and peer traffic both need a certificate from etcd's own CA.
    const etcdUrl = `https://127.0.0.1:${ports.etcdClient}`;
    const etcdPeerUrl = `https://127.0.0.1:${ports.etcdPeer}`;
    const etcdArgs = [
      '--name=default', `--data-dir=${join(rootDir, 'etcd')}`,
      `--listen-client-urls=${etcdUrl}`, `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=${etcdPeerUrl}`, `--initial-advertise-peer-urls=${etcdPeerUrl}`,
      `--initial-cluster=default=${etcdPeerUrl}`,
      `--cert-file=${etcdPki.serverCert}`, `--key-file=${etcdPki.serverKey}`, '--client-cert-auth', `--trusted-ca-file=${etcdPki.caCert}`,
      `--peer-cert-file=${etcdPki.serverCert}`, `--peer-key-file=${etcdPki.serverKey}`, '--peer-client-cert-auth', `--peer-trusted-ca-file=${etcdPki.caCert}`,
      '--unsafe-no-fsync', '--log-level=warn', '--quota-backend-bytes=4294967296',
    ];
    const etcdTls = { ca: readFileSync(etcdPki.caCert), cert: readFileSync(etcdPki.clientCert), key: readFileSync(etcdPki.clientKey) };
    progress('starting etcd');
    procs.set('etcd', start('etcd', bin('etcd'), etcdArgs));
    await waitFor('etcd /health', procs.get('etcd')!, 30_000, async () => {
      const r = await fetchText(`${etcdUrl}/health`, etcdTls);
      return r.body.includes('"health":"true"');
    });

    const kubeletArgs = options.kubelets
      ? [
          '--authorization-mode=Node,RBAC', '--enable-admission-plugins=NodeRestriction',
          '--kubelet-preferred-address-types=InternalIP',
          ...await (async () => {
            const c = await issueClientCert(pki, 'kube-apiserver-kubelet-client', ['system:masters']);
            return [`--kubelet-client-certificate=${c.cert}`, `--kubelet-client-key=${c.key}`];
          })(),
        ]
      : ['--authorization-mode=RBAC'];
    const apiserverArgs = [
      `--etcd-servers=${etcdUrl}`, `--etcd-cafile=${etcdPki.caCert}`, `--etcd-certfile=${etcdPki.clientCert}`, `--etcd-keyfile=${etcdPki.clientKey}`,
      `--bind-address=${apiAddress}`, `--secure-port=${ports.apiserver}`, `--advertise-address=${apiAddress}`,
      `--cert-dir=${join(rootDir, 'apiserver')}`,
      `--tls-cert-file=${pki.serverCert}`, `--tls-private-key-file=${pki.serverKey}`,
      `--client-ca-file=${pki.caCert}`,
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${pki.saPub}`, `--service-account-signing-key-file=${pki.saKey}`,
      `--service-cluster-ip-range=${serviceCidr}`,
      ...kubeletArgs, '--allow-privileged=true',
      // A loopback address cannot be published as the kubernetes Service's endpoint.
      ...(isLoopback(apiAddress) ? ['--endpoint-reconciler-type=none'] : []),
      '--max-requests-inflight=1000', '--max-mutating-requests-inflight=500',
      ...(options.clusterEgressSocket === undefined ? [] : [`--egress-selector-config-file=${writeEgressConfig(rootDir, options.clusterEgressSocket)}`]),
    ];
    const startApiserver = () => {
      progress('starting kube-apiserver');
      procs.set('kube-apiserver', start('kube-apiserver', bin('kube-apiserver'), apiserverArgs));
      return waitFor('kube-apiserver /readyz', procs.get('kube-apiserver')!, 90_000, async () => (await fetchText(`${internalServer}/readyz`, adminTls)).body === 'ok');
    };
    await startApiserver();

    const ck = componentKubeconfig;
    const common = [`--kubeconfig=${ck}`, `--authentication-kubeconfig=${ck}`, `--authorization-kubeconfig=${ck}`, '--bind-address=127.0.0.1', '--leader-elect=false', '--kube-api-qps=200', '--kube-api-burst=400'];
    progress('starting kube-controller-manager and kube-scheduler');
    procs.set('kube-controller-manager', start('kube-controller-manager', bin('kube-controller-manager'), [
      ...common, `--secure-port=${ports.controllerManager}`, `--cert-dir=${join(rootDir, 'controller-manager')}`,
      '--allocate-node-cidrs=true', `--cluster-cidr=${clusterCidr}`, `--node-cidr-mask-size=${options.nodeCidrMaskSize ?? 24}`,
      `--service-cluster-ip-range=${serviceCidr}`,
      `--service-account-private-key-file=${pki.saKey}`, `--root-ca-file=${pki.caCert}`,
      '--use-service-account-credentials=true',
      `--cluster-signing-cert-file=${pki.caCert}`, `--cluster-signing-key-file=${pki.caKey}`,
    ]));
    procs.set('kube-scheduler', start('kube-scheduler', bin('kube-scheduler'), [
      ...common, `--secure-port=${ports.scheduler}`,
    ]));
    await Promise.all([
      waitFor('kube-controller-manager /healthz', procs.get('kube-controller-manager')!, 60_000, async () => (await fetchText(`https://127.0.0.1:${ports.controllerManager}/healthz`, { insecure: true })).body === 'ok'),
      waitFor('kube-scheduler /healthz', procs.get('kube-scheduler')!, 60_000, async () => (await fetchText(`https://127.0.0.1:${ports.scheduler}/healthz`, { insecure: true })).body === 'ok'),
    ]);

    if (options.kwok ?? true) {
      progress('starting kwok');
      // kwok's own fast stages (copied by lab/bins/build.sh) and ours (lab/kwok-stages), unless told otherwise.
      const stages = (options.kwokStages ?? kwokStageFiles(binDir)).map((f) => `--config=${f}`);
      procs.set('kwok', start('kwok', bin('kwok'), [
        `--kubeconfig=${ck}`, '--manage-all-nodes=false',
        '--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake',
        '--node-lease-duration-seconds=40', `--cidr=${clusterCidr}`,
        `--server-address=127.0.0.1:${ports.kwok}`, ...stages,
      ], { ...process.env, HOME: rootDir }));
      await waitFor('kwok /healthz', procs.get('kwok')!, 30_000, async () => (await fetchText(`http://127.0.0.1:${ports.kwok}/healthz`)).body.trim() === 'ok');
    }

    const get = async <T>(path: string): Promise<T> => {
      const r = await getText(new URL(path, server).toString(), { ...adminTls, timeoutMs: 10_000 });
      if (r.status !== 200) throw new Error(`GET ${path}: HTTP ${r.status}`);
      return JSON.parse(r.body) as T;
    };
    await waitFor('the default ServiceAccount', procs.get('kube-controller-manager')!, 60_000, async () => {
      try {
        await get('/api/v1/namespaces/default/serviceaccounts/default');
        return true;
      } catch {
        return false;
      }
    });
    progress(`control plane ready in ${((Date.now() - started) / 1000).toFixed(1)}s at ${server}`);

    let stopped = false;
    const plane: ControlPlane = {
      kubeconfig,
      server,
      ...(netns ? { internalServer } : {}),
      rootDir,
      binDir,
      pki,
      ports,
      pids: () => [...procs.values()].filter((p) => p.running()).map((p) => p.pid),
      async kubectl(args, opts = {}) {
        const child = execFileAsync(bin('kubectl'), [`--kubeconfig=${kubeconfig}`, ...args], {
          // kubectl's discovery cache stays with the control plane, not in ~/.kube/cache (a directory per API server).
          env: opts.env ?? { KUBECACHEDIR: join(rootDir, 'kube-cache'), ...process.env, KUBECONFIG: kubeconfig },
          timeout: opts.timeoutMs ?? 60_000,
          maxBuffer: 64 * 1024 * 1024,
        });
        if (opts.input !== undefined) {
          child.child.stdin?.end(opts.input);
        }
        return child;
      },
      get,
      async userKubeconfig(name, groups = []) {
        const cert = await issueClientCert(pki, name, groups);
        const file = join(rootDir, `user-${name.replace(/[^a-zA-Z0-9_.-]/g, '_')}.kubeconfig`);
        writeKubeconfig(file, server, pki.caCert, name, cert.cert, cert.key);
        return file;
      },
      async restartApiserver(downMs = 0) {
        await procs.get('kube-apiserver')?.stop();
        if (downMs > 0) await sleep(downMs);
        await startApiserver();
      },
      async stop() {
        if (stopped) return;
        stopped = true;
        await forwarder?.close();
        await stopAll(procs);
        rmSync(rootDir, { recursive: true, force: true });
        forgetDir(rootDir);
      },
    };
    return plane;
  } catch (err) {
    const logs = [...procs.values()].map((p) => `--- ${p.name} (last lines of ${p.logFile}) ---\n${tail(p.logFile, 15)}`).join('\n');
    await forwarder?.close();
    await stopAll(procs);
    rmSync(rootDir, { recursive: true, force: true });
    forgetDir(rootDir);
    throw new Error(`control plane did not start: ${err instanceof Error ? err.message : String(err)}\n${logs}`);
  }
}

async function stopAll(procs: Map<string, ManagedProcess>): Promise<void> {
  // Clients first, etcd last, so nothing logs storage errors on the way down.
  for (const name of ['kwok', 'kube-scheduler', 'kube-controller-manager', 'kube-apiserver', 'etcd', 'gateway']) {
    await procs.get(name)?.stop(10_000);
  }
}

function writeEgressConfig(rootDir: string, socket: string): string {
  const file = join(rootDir, 'apiserver', 'egress-selector.yaml');
  writeFileSync(file, stringify({
    apiVersion: 'apiserver.k8s.io/v1beta1',
    kind: 'EgressSelectorConfiguration',
    egressSelections: [
      { name: 'cluster', connection: { proxyProtocol: 'HTTPConnect', transport: { uds: { udsName: resolve(socket) } } } },
      { name: 'controlplane', connection: { proxyProtocol: 'Direct' } },
      { name: 'etcd', connection: { proxyProtocol: 'Direct' } },
    ],
  }));
  return file;
}

function writeKubeconfig(file: string, server: string, ca: string, user: string, cert: string, key: string): void {
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'cilium-migrate-test', cluster: { server, 'certificate-authority': resolve(ca) } }],
    users: [{ name: user, user: { 'client-certificate': resolve(cert), 'client-key': resolve(key) } }],
    contexts: [{ name: 'cilium-migrate-test', context: { cluster: 'cilium-migrate-test', user } }],
    'current-context': 'cilium-migrate-test',
  };
  writeFileSync(file, stringify(config), { mode: 0o600 });
}

/** Waits for `check` to pass while `proc` runs (not up yet: false or an error). */
async function waitFor(what: string, proc: ManagedProcess, timeoutMs: number, check: () => Promise<boolean>): Promise<void> {
  let exited = false;
  await waitUntil(what, async () => {
    if (!proc.running()) return (exited = true);
    return (await check()) || undefined;
  }, timeoutMs, 200);
  if (exited) throw new Error(`${proc.name} exited while waiting for ${what}`);
}

function firstServiceIp(cidr: string): string {
  const [base] = cidr.split('/');
  const parts = (base ?? '').split('.').map(Number);
  parts[3] = (parts[3] ?? 0) + 1;
  return parts.join('.');
}

function isLoopback(address: string): boolean {
  return address.startsWith('127.') || address === '::1' || address === 'localhost';
}

function tail(file: string, lines: number): string {
  return readFileOr(file, '').split('\n').slice(-lines - 1).join('\n');
}

function readFileOr(file: string, fallback: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return fallback;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

// Cilium in the real-node lab, installed as the README tells users: the plugin's `values --phase
// initial` piped into a real `helm install` of the chart from the cilium module, with only the
// overrides this machine needs (lab/cilium/values-lab.yaml) and the lab's API server address.
// The lab's helm keeps its cache, configuration and data in the lab's state directory, so nothing
// of it outlives the lab; `STATE_DIR/bin/helm` is that helm for users and the plugin's
// `finalize --apply`.
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { statePaths } from '../daemon.js';
import { defaultLayout, pluginLayoutFlags, type LabLayout } from '../layout.js';

export interface CiliumInstall {
  /** lab/bins/build.sh --dir cilium-chart: helm and chart/. */
  chartDir: string;
  /** The repository (lab/cilium/values-lab.yaml) and the bundled plugin (dist/). */
  repoRoot: string;
  kubeconfig: string;
  /** The lab's state directory: helm's homes, and bin/helm. */
  stateDir: string;
  /** CILIUM_VERSION of lab/bins/cilium/module.env (`v1.18.3`). */
  version: string;
  /** The API server as the nodes reach it (k8sServiceHost, k8sServicePort). */
  apiServer: { host: string; port: number };
  /** Cilium's namespace, CIDR and tunnel port, and the legacy ones the values must avoid (default: the seed's). */
  layout?: LabLayout;
}

/** The release and the chart's objects the lab waits for (in the layout's ciliumNamespace). */
export const ciliumRelease = { name: 'cilium', daemonSet: 'cilium', operator: 'cilium-operator', agentNotReadyTaint: 'node.cilium.io/agent-not-ready' } as const;

/** helm's environment: every home inside the lab's state directory, its Kubernetes discovery cache too (the scenario's kubectl's, not ~/.kube/cache). */
export function helmEnv(stateDir: string): NodeJS.ProcessEnv {
  const home = join(stateDir, 'helm');
  return { HELM_CACHE_HOME: join(home, 'cache'), HELM_CONFIG_HOME: join(home, 'config'), HELM_DATA_HOME: join(home, 'data'), KUBECACHEDIR: statePaths(stateDir).kubeCache };
}

/** `helm` for the lab (STATE_DIR/bin/helm): the chart's helm, with its homes in the state directory. */
export function writeHelmWrapper(file: string, o: { chartDir: string; stateDir: string }): void {
  const env = Object.entries(helmEnv(o.stateDir)).map(([k, v]) => `export ${k}=${JSON.stringify(v)}`).join('\n');
  writeFileSync(file, `#!/bin/sh\n# helm for the cilium-migrate lab; Cilium's chart is ${join(o.chartDir, 'chart')}\n${env}\nexec ${JSON.stringify(join(o.chartDir, 'helm'))} "$@"\n`);
  chmodSync(file, 0o755);
}

/** The chart directory helm installs and upgrades (the module's install/kubernetes/cilium). */
export const ciliumChart = (chartDir: string) => join(chartDir, 'chart');

/** The arguments of the lab's `helm install`, values on stdin: `-f -` then the lab's overrides. */
export function helmInstallArgs(o: Pick<CiliumInstall, 'chartDir' | 'repoRoot' | 'kubeconfig' | 'apiServer' | 'layout'>): string[] {
  const namespace = (o.layout ?? defaultLayout).ciliumNamespace;
  return [
    'install', ciliumRelease.name, ciliumChart(o.chartDir), '--namespace', namespace, ...(namespace === 'kube-system' ? [] : ['--create-namespace']), '--kubeconfig', o.kubeconfig,
    '--values', '-', '--values', join(o.repoRoot, 'lab', 'cilium', 'values-lab.yaml'),
    '--set', `k8sServiceHost=${o.apiServer.host}`, '--set', `k8sServicePort=${o.apiServer.port}`,
  ];
}

/** The plugin's `values` command line for the lab's `helm install`: the layout's CIDRs and ports. */
export function initialValuesArgs(version: string, layout: LabLayout = defaultLayout): string[] {
  return ['values', '--phase', 'initial', '--cilium-version', version.replace(/^v/, ''), ...pluginLayoutFlags(layout, 'values')];
}

/** `kubectl cilium-migrate values --phase initial --cilium-version V ... | helm install cilium CHART -n NS -f - -f values-lab.yaml ...`. */
export async function installCilium(o: CiliumInstall, log: (line: string) => void): Promise<void> {
  for (const d of Object.values(helmEnv(o.stateDir))) mkdirSync(d!, { recursive: true });
  const valuesArgs = initialValuesArgs(o.version, o.layout);
  const values = await run(process.execPath, [join(o.repoRoot, 'dist', 'kubectl-cilium_migrate'), ...valuesArgs]);
  const args = helmInstallArgs(o);
  log(`  kubectl cilium-migrate ${valuesArgs.join(' ')} | helm ${args.join(' ')}`);
  const out = await run(join(o.chartDir, 'helm'), args, values, { ...process.env, ...helmEnv(o.stateDir) });
  for (const l of out.trim().split('\n').slice(0, 6)) log(`  ${l}`);
}

/** Runs a program; resolves with its stdout, rejects with its stderr when it fails. */
function run(file: string, args: string[], input?: string, env?: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'], ...(env ? { env } : {}) });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${file} ${args.join(' ')} exited ${code}: ${err.trim() || out.trim()}`))));
    child.stdin.end(input ?? '');
  });
}

// What operators apply, against a real API server: every kustomization builds with kubectl's own
// kustomize, every object is accepted by a server-side dry-run apply (with Cilium's and
// prometheus-operator's CRDs installed), the DaemonSet lands on every node, and the agent's
// ServiceAccount, with a real token, can do what discovery needs and nothing else.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { agentSelector } from '../../agent/config.js';
import type { ClusterView } from '../../agent/discovery.js';
import { kubeDiscovery } from '../../agent/kube-discovery.js';
import { liteCredentials, liteKube } from '../../lib/kube-lite.js';
import { createSimulatedNodes, installCiliumCrds, installPrometheusOperatorCrds, kindNodes } from '../../lab/cluster-objects.js';
import { startControlPlane, type ControlPlane } from '../../lab/control-plane.js';
import { repoRoot, runPlugin } from '../harness/plugin.js';
import { progress } from '../harness/shared-cluster.js';
import { eventually } from '../harness/wait.js';

const run = promisify(execFile);
const manifests = join(repoRoot, 'manifests');
const ns = 'cilium-migrate';

interface KubeDoc {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  spec?: Record<string, unknown>;
  data?: Record<string, string>;
}

describe('manifests on a real API server', () => {
  let cp: ControlPlane;
  const built = new Map<string, KubeDoc[]>();
  const kustomize = async (dir: string) => (await cp.kubectl(['kustomize', join(manifests, dir)])).stdout;

  before(async () => {
    cp = await startControlPlane({ progress });
    await installCiliumCrds(cp);
    await installPrometheusOperatorCrds(cp);
    await createSimulatedNodes(cp, kindNodes(2));
    for (const dir of ['agent', 'monitoring']) built.set(dir, parseAllDocuments(await kustomize(dir)).map((d) => d.toJS() as KubeDoc));
  });
  after(() => cp?.stop());

  const find = (dir: string, kind: string) => {
    const doc = built.get(dir)!.find((d) => d.kind === kind);
    assert.ok(doc, `${dir} has a ${kind}`);
    return doc;
  };

  it('builds the agent base and the monitoring overlay with kubectl kustomize', () => {
    const kinds = (dir: string) => built.get(dir)!.map((d) => d.kind).sort();
    assert.deepEqual(kinds('agent'), ['ClusterRole', 'ClusterRoleBinding', 'ConfigMap', 'DaemonSet', 'Namespace', 'NetworkPolicy', 'Role', 'RoleBinding', 'Service', 'ServiceAccount']);
    assert.deepEqual(kinds('monitoring'), [...kinds('agent'), 'ConfigMap', 'PrometheusRule', 'ServiceMonitor'].sort());
    for (const d of built.get('monitoring')!) if (!d.kind.startsWith('Cluster') && d.kind !== 'Namespace') assert.equal(d.metadata.namespace, ns, `${d.kind} ${d.metadata.name}`);

    // The image is named once, in the base's kustomization, and it carries the package version.
    const kustomization = parse(readFileSync(join(manifests, 'agent', 'kustomization.yaml'), 'utf8')) as { images: { name: string; newName: string; newTag: string }[] };
    const version = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;
    const [image] = kustomization.images;
    assert.equal(image?.newTag, version);
    const ds = find('agent', 'DaemonSet') as KubeDoc & { spec: { template: { spec: { containers: { image: string; envFrom: { configMapRef: { name: string } }[] }[] } } } };
    assert.equal(ds.spec.template.spec.containers[0]!.image, `${image!.newName}:${image!.newTag}`);
    // The generated ConfigMap's hashed name is the one the DaemonSet reads.
    assert.equal(ds.spec.template.spec.containers[0]!.envFrom[0]!.configMapRef.name, find('agent', 'ConfigMap').metadata.name);

    const dashboard = built.get('monitoring')!.find((d) => d.kind === 'ConfigMap' && d.metadata.labels?.grafana_dashboard === '1');
    assert.equal(dashboard?.data?.['cilium-migrate.json'], readFileSync(join(manifests, 'monitoring', 'grafana-dashboard.json'), 'utf8'));
  });

  it('accepts every manifest in a server-side dry-run apply, with strict field validation', async () => {
    // Objects in the namespace need it to exist, even in a dry run.
    await cp.kubectl(['apply', '--server-side', '-f', '-'], { input: stringify(find('agent', 'Namespace')) });
    const inputs: [string, string][] = [
      ['manifests/monitoring (with manifests/agent)', await kustomize('monitoring')],
      ['manifests/ciliumnodeconfig.yaml', readFileSync(join(manifests, 'ciliumnodeconfig.yaml'), 'utf8')],
      ['manifests/rbac/plugin.yaml', readFileSync(join(manifests, 'rbac', 'plugin.yaml'), 'utf8')],
      ['manifests/rbac/disable-eviction.yaml', readFileSync(join(manifests, 'rbac', 'disable-eviction.yaml'), 'utf8')],
      ['manifests/rbac/in-cluster.yaml', readFileSync(join(manifests, 'rbac', 'in-cluster.yaml'), 'utf8')],
    ];
    for (const [name, yaml] of inputs) {
      const docs = parseAllDocuments(yaml).filter((d) => d.contents !== null);
      const r = await cp.kubectl(['apply', '--server-side', '--dry-run=server', '--validate=strict', '-f', '-'], { input: yaml });
      const applied = r.stdout.split('\n').filter((l) => / serverside-applied \(server dry run\)$/.test(l));
      assert.equal(applied.length, docs.length, `${name}: ${r.stdout}${r.stderr}`);
    }
    // The same check refuses what is wrong: a misspelt field of the DaemonSet.
    const broken = structuredClone(find('agent', 'DaemonSet')) as KubeDoc & { spec: { template: { spec: Record<string, unknown> } } };
    broken.spec.template.spec.tolerationz = [];
    await assert.rejects(cp.kubectl(['apply', '--server-side', '--dry-run=server', '--validate=strict', '-f', '-'], { input: stringify(broken) }), /\.spec\.template\.spec\.tolerationz: field not declared in schema/);
  });

  it('runs an agent on every node: the tainted control plane and a cordoned worker too', async () => {
    await cp.kubectl(['cordon', 'kind-worker2']);
    await cp.kubectl(['apply', '--server-side', '-k', join(manifests, 'agent')]);
    const nodes = await eventually('an agent pod Running on each of the 3 nodes', async () => {
      const { stdout } = await cp.kubectl(['-n', ns, 'get', 'pods', '-l', agentSelector, '-o', 'jsonpath={range .items[?(@.status.phase=="Running")]}{.spec.nodeName}{"\\n"}{end}']);
      const list = stdout.split('\n').filter(Boolean).sort();
      return list.length === 3 ? list : undefined;
    }, 60_000);
    assert.deepEqual(nodes, ['kind-control-plane', 'kind-worker', 'kind-worker2']);
  });

  it('is what `prepare --agent-manifests` applies: the monitoring overlay\'s kustomize output, server-side', async () => {
    const file = join(cp.rootDir, 'agent.yaml');
    writeFileSync(file, await kustomize('monitoring'));
    const r = await runPlugin(['prepare', '--kubeconfig', cp.kubeconfig, '--agent-manifests', file, '-o', 'json'], { env: { PATH: process.env.PATH ?? '', HOME: cp.rootDir } });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const applied = (JSON.parse(r.stdout) as { kind: string }[]).map((x) => x.kind).sort();
    assert.deepEqual(applied, ['CiliumNodeConfig', ...built.get('monitoring')!.map((d) => d.kind)].sort());
    await cp.kubectl(['-n', ns, 'get', 'servicemonitor,prometheusrule', 'cilium-migrate-agent']);
    // Every field arrives as written: the NetworkPolicy's `from` (a name client-node's models spell
    // `_from`) once went missing on the way, which left a rule allowing everyone.
    const np = JSON.parse((await cp.kubectl(['-n', ns, 'get', 'networkpolicy', 'cilium-migrate-agent', '-o', 'json'])).stdout) as KubeDoc;
    assert.deepEqual(np.spec!.ingress, (find('agent', 'NetworkPolicy').spec as { ingress: unknown }).ingress);
    const fresh = structuredClone(find('agent', 'NetworkPolicy'));
    fresh.metadata.name = 'applied-by-prepare-only';
    writeFileSync(file, stringify(fresh));
    const again = await runPlugin(['prepare', '--kubeconfig', cp.kubeconfig, '--agent-manifests', file], { env: { PATH: process.env.PATH ?? '', HOME: cp.rootDir } });
    assert.equal(again.code, 0, again.stderr);
    const created = JSON.parse((await cp.kubectl(['-n', ns, 'get', 'networkpolicy', 'applied-by-prepare-only', '-o', 'json'])).stdout) as KubeDoc;
    assert.deepEqual(created.spec, fresh.spec);
  });

  it('lets the agent ServiceAccount, with a real token, run discovery: list and watch of pods, nodes and CiliumNodes', async () => {
    // As in the pod: the token and CA in the service account directory, the API server from the
    // KUBERNETES_SERVICE_* variables.
    const saDir = join(cp.rootDir, 'serviceaccount');
    mkdirSync(saDir);
    copyFileSync(cp.pki.caCert, join(saDir, 'ca.crt'));
    writeFileSync(join(saDir, 'token'), await serviceAccountToken());
    const api = new URL(cp.server);
    const creds = liteCredentials(undefined, { KUBERNETES_SERVICE_HOST: api.hostname, KUBERNETES_SERVICE_PORT: api.port }, saDir);
    const logs: string[] = [];
    let view: ClusterView | undefined;
    const discovery = kubeDiscovery(liteKube(creds), ns, agentSelector, 'cilium-migrate.io/phase', (l) => logs.push(l));
    discovery.start((v) => (view = v));
    try {
      await eventually('the agents and nodes discovered', async () => (view?.agents.length === 3 && view.nodes.length === 3 ? true : undefined), 30_000);
      // A watch event, not a relist: a CiliumNode created after the start shows up.
      await cp.kubectl(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'cilium.io/v2', kind: 'CiliumNode', metadata: { name: 'kind-worker' }, spec: { ipam: { podCIDRs: ['10.245.1.0/24'] } } }) });
      await eventually('the CiliumNode seen', async () => (view?.ciliumNodeCidrs['kind-worker']?.[0] === '10.245.1.0/24' ? true : undefined), 30_000);
      // The reflectors log every failed request; none may be an authorization failure.
      assert.deepEqual(logs.filter((l) => /\b(401|403)\b|forbidden|unauthorized/i.test(l)), [], 'no request refused');
    } finally {
      discovery.stop();
    }
  });

  it('refuses the agent ServiceAccount secrets and everything discovery does not need', async () => {
    const kubeconfig = await serviceAccountKubeconfig();
    const as = (args: string[]) => cp.kubectl(['--kubeconfig', kubeconfig, ...args]);
    await as(['get', 'nodes']);
    await as(['-n', ns, 'get', 'pods']);
    await as(['get', 'ciliumnodes.cilium.io']);
    const refused: string[][] = [
      ['-n', ns, 'get', 'secrets'],
      ['get', 'secrets', '--all-namespaces'],
      ['-n', 'kube-system', 'get', 'secret', 'anything'],
      ['-n', 'kube-system', 'get', 'pods'],
      ['-n', ns, 'get', 'configmaps'],
      ['label', 'node', 'kind-worker', 'x=y'],
      ['-n', ns, 'delete', 'pods', '--all'],
      ['get', 'ciliumnodeconfigs.cilium.io', '-A'],
    ];
    for (const args of refused) {
      await assert.rejects(as(args), /Forbidden|forbidden/, `refused: kubectl ${args.join(' ')}`);
    }
  });

  it('has an image whose one file, dist/agent.js, runs on its own (no node_modules beside it)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'agent-alone-'));
    try {
      copyFileSync(join(repoRoot, 'dist', 'agent.js'), join(dir, 'agent.js'));
      // Reaching the kubeconfig check means every module the agent imports was found in the bundle.
      const r = await run(process.execPath, [join(dir, 'agent.js'), '--kubeconfig', join(dir, 'missing')], { cwd: dir, env: { PATH: process.env.PATH ?? '', NODE_NAME: 'n', POD_NAME: 'p', POD_IP: '10.244.0.5' } }).then(
        () => assert.fail('the agent started without a kubeconfig'),
        (e: { code: number; stderr: string }) => e,
      );
      assert.match(r.stderr, /kubeconfig .*missing/);
      assert.doesNotMatch(r.stderr, /Cannot find (module|package)/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('builds the krew archive the plugin manifest names, reproducibly, with the binary it runs', async () => {
    const make = async () => (await run('make', ['-s', '--no-print-directory', '-o', 'build', 'krew-archive'], { cwd: repoRoot })).stdout.trim();
    const first = await make();
    const [sum, archive] = first.split(/\s+/);
    const plugin = parse(readFileSync(join(repoRoot, 'plugins', 'cilium-migrate.yaml'), 'utf8')) as { spec: { platforms: { uri: string; bin: string; files: { from: string }[] }[] } };
    const platform = plugin.spec.platforms[0]!;
    assert.ok(platform.uri.endsWith(`/${basename(archive!)}`), `${platform.uri} names ${archive}`);
    assert.equal(createHash('sha256').update(readFileSync(join(repoRoot, archive!))).digest('hex'), sum);
    const { stdout } = await run('tar', ['-tvzf', join(repoRoot, archive!)]);
    const entries = stdout.trim().split('\n');
    assert.equal(entries.length, 1, stdout);
    assert.match(entries[0]!, new RegExp(`^-rwxr-xr-x .* ${platform.files[0]!.from}$`));
    assert.equal(platform.bin, platform.files[0]!.from);
    assert.equal(await make(), first, 'the same build gives the same checksum');
  });

  async function serviceAccountToken(): Promise<string> {
    return (await cp.kubectl(['-n', ns, 'create', 'token', 'cilium-migrate-agent', '--duration=10m'])).stdout.trim();
  }

  async function serviceAccountKubeconfig(): Promise<string> {
    const token = await serviceAccountToken();
    const file = join(cp.rootDir, 'agent-sa.kubeconfig');
    writeFileSync(file, stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'test', cluster: { server: cp.server, 'certificate-authority': cp.pki.caCert } }],
      users: [{ name: 'agent', user: { token } }],
      contexts: [{ name: 'agent', context: { cluster: 'test', user: 'agent', namespace: ns } }],
      'current-context': 'agent',
    }), { mode: 0o600 });
    return file;
  }
});

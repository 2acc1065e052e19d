// The agent's manifests agree with the agent's code: the variables it reads, its port and
// endpoints, what its discovery watches (the RBAC), the measured resources (BENCHMARKS.md), and
// the labels and port names the Service, the NetworkPolicy and the ServiceMonitor rely on.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse, parseAllDocuments } from 'yaml';
import { agentSelector, parseAgentConfig } from '../../agent/config.js';
import { discoveryWatches } from '../../agent/kube-discovery.js';
import { agentNamespace } from '../../lib/defaults.js';
import { agentJob } from '../../monitoring/dashboard.js';
import { repoRoot } from '../harness/plugin.js';

const read = (...path: string[]) => readFileSync(join(repoRoot, ...path), 'utf8');
const docs = (...path: string[]) => parseAllDocuments(read(...path)).map((d) => d.toJS() as Doc);

interface Doc {
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  // Parsed YAML, read by path.
  spec: any;
  rules?: { apiGroups: string[]; resources: string[]; verbs: string[] }[];
}

const [ds] = docs('manifests', 'agent', 'daemonset.yaml');
const container = ds!.spec.template.spec.containers[0];
const kustomization = parse(read('manifests', 'agent', 'kustomization.yaml')) as { namespace: string; configMapGenerator: { literals: string[] }[] };
const podLabels = ds!.spec.template.metadata.labels as Record<string, string>;

/** MiB from a Kubernetes quantity like 192Mi. */
const mib = (q: string) => Number(/^(\d+)Mi$/.exec(q)?.[1] ?? Number.NaN);

describe('the agent manifests', () => {
  it('set every variable the agent reads, with values it accepts, and the downward API for its identity', async () => {
    const env: Record<string, string> = {};
    for (const e of container.env as { name: string; value?: string; valueFrom?: { fieldRef: { fieldPath: string } } }[]) env[e.name] = e.value ?? `from:${e.valueFrom?.fieldRef.fieldPath}`;
    assert.deepEqual(
      { NODE_NAME: env.NODE_NAME, POD_NAME: env.POD_NAME, POD_NAMESPACE: env.POD_NAMESPACE, POD_IP: env.POD_IP },
      { NODE_NAME: 'from:spec.nodeName', POD_NAME: 'from:metadata.name', POD_NAMESPACE: 'from:metadata.namespace', POD_IP: 'from:status.podIP' },
    );
    for (const literal of kustomization.configMapGenerator[0]!.literals) {
      const [k, v] = literal.split('=');
      env[k!] = v!;
    }
    const source = read('agent', 'config.ts');
    for (const name of Object.keys(env)) assert.match(source, new RegExp(`env\\.${name}\\b`), `agent/config.ts reads ${name}`);
    const cfg = await parseAgentConfig([], { ...env, NODE_NAME: 'n', POD_NAME: 'p', POD_NAMESPACE: agentNamespace, POD_IP: '10.244.0.5' });
    assert.equal(cfg.port, container.ports[0].containerPort);
    assert.deepEqual([cfg.legacyCidrs, cfg.ciliumCidrs, cfg.intervalMs], [['10.244.0.0/16'], ['10.245.0.0/16'], 5000]);
    assert.equal(kustomization.namespace, agentNamespace);
    assert.equal(Object.entries(podLabels).map(([k, v]) => `${k}=${v}`).join(','), agentSelector, 'discovery finds the pods by these labels');
  });

  it('run the agent non-root, read-only, with no capability but NET_RAW, on every node, probed on its endpoints', () => {
    const sc = container.securityContext;
    assert.deepEqual([sc.readOnlyRootFilesystem, sc.allowPrivilegeEscalation, sc.capabilities], [true, false, { drop: ['ALL'], add: ['NET_RAW'] }]);
    assert.equal(ds!.spec.template.spec.securityContext.runAsNonRoot, true);
    assert.deepEqual(ds!.spec.template.spec.tolerations, [{ operator: 'Exists' }]);
    assert.equal(ds!.spec.template.spec.hostNetwork, undefined, 'on the pod network, so each agent sits on its node\'s overlay');
    assert.deepEqual([container.readinessProbe.httpGet.path, container.livenessProbe.httpGet.path], ['/readyz', '/healthz']);
    const http = read('agent', 'http.ts');
    for (const path of ['/readyz', '/healthz']) assert.match(http, new RegExp(`app\\.get\\('${path}'`));
    assert.equal(ds!.spec.updateStrategy.type, 'RollingUpdate');
  });

  it('request at least the memory and CPU the benchmark measured, and limit above it', () => {
    const rows = [...read('BENCHMARKS.md').matchAll(/^\| \d+ \| \d+ \| ([\d.]+) \(([\d.]+)-([\d.]+)\) \| ([\d.]+) \(([\d.]+)-([\d.]+)\) \|/gm)];
    assert.ok(rows.length >= 3, 'the agent table of BENCHMARKS.md');
    const peakRss = Math.max(...rows.map((r) => Number(r[3])));
    const peakCpuMilli = Math.max(...rows.map((r) => Number(r[6]))) * 10;
    const { requests, limits } = container.resources;
    assert.ok(mib(requests.memory) >= peakRss, `memory request ${requests.memory} >= ${peakRss} MiB`);
    assert.ok(mib(limits.memory) >= 1.5 * peakRss, `memory limit ${limits.memory} has headroom over ${peakRss} MiB`);
    assert.ok(Number.parseInt(requests.cpu, 10) >= peakCpuMilli, `cpu request ${requests.cpu} >= ${peakCpuMilli}m`);
    assert.ok(Number.parseInt(limits.cpu, 10) >= 5 * peakCpuMilli, `cpu limit ${limits.cpu}`);
  });

  it('request the memory today\'s agent holds idle at 1,000-node discovery, and limit above its peak and CPU in a wave', () => {
    // BENCHMARKS.md "Agent with 1,000-node discovery", today's row: | after (today) | ready | RSS after sync | RSS idle | CPU idle | RSS in the wave | CPU in the wave | ...
    const row = /^\| after \(today\) \| [\d.]+ \| [\d.]+ \| ([\d.]+) \| [\d.]+ \| ([\d.]+) \| ([\d.]+) \|/m.exec(read('BENCHMARKS.md'));
    assert.ok(row, 'today\'s row of the discovery table in BENCHMARKS.md');
    const [idleRss, waveRss, waveCpuMilli] = [Number(row[1]), Number(row[2]), Number(row[3]) * 10];
    const { requests, limits } = container.resources;
    assert.ok(mib(requests.memory) >= idleRss, `memory request ${requests.memory} >= ${idleRss} MiB idle`);
    // RSS is the process's; the pod's cgroup also counts its ping processes and page cache.
    assert.ok(mib(limits.memory) >= 1.25 * waveRss, `memory limit ${limits.memory} has headroom over ${waveRss} MiB in a wave`);
    assert.ok(Number.parseInt(limits.cpu, 10) >= 1.5 * waveCpuMilli, `cpu limit ${limits.cpu} has headroom over ${waveCpuMilli}m in a wave`);
  });

  it('grant list and watch on exactly what discovery watches', () => {
    const rbac = docs('manifests', 'agent', 'rbac.yaml');
    const rules = (kind: string) => rbac.find((d) => d.kind === kind)!.rules!.map((r) => `${r.verbs.join(',')} ${r.apiGroups.join('')}/${r.resources.join(',')}`);
    assert.deepEqual(rules('ClusterRole'), ['list,watch /nodes', 'list,watch cilium.io/ciliumnodes']);
    assert.deepEqual(rules('Role'), ['list,watch /pods']);
    const watched = discoveryWatches('NS', 'app=x', 'phase').map((w) => w.path);
    assert.deepEqual(watched, ['/api/v1/namespaces/NS/pods', '/api/v1/nodes', '/apis/cilium.io/v2/ciliumnodes']);
  });

  it('let agents reach each other with every protocol (ICMP too), and their HTTP port only Prometheus and the API server', () => {
    const [np] = docs('manifests', 'agent', 'networkpolicy.yaml');
    assert.deepEqual(np!.spec.podSelector.matchLabels, podLabels);
    assert.deepEqual(np!.spec.policyTypes, ['Ingress'], 'egress stays open');
    const rules = np!.spec.ingress as { from?: Record<string, unknown>[]; ports?: unknown[] }[];
    // A rule without `from` admits every source: none may exist.
    assert.ok(rules.every((r) => Array.isArray(r.from) && r.from.length > 0), 'every rule names its sources');
    assert.deepEqual(rules[0], { from: [{ podSelector: { matchLabels: podLabels } }] }, 'agents: no ports, every protocol, ICMP included');
    const http = [{ port: 'http', protocol: 'TCP' }];
    assert.deepEqual(rules.slice(1), [
      { from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } }, podSelector: { matchLabels: { 'app.kubernetes.io/name': 'prometheus' } } }], ports: http },
      { from: [{ ipBlock: { cidr: '172.18.0.0/16' } }], ports: http },
    ], 'port 8080 only from Prometheus and the API server\'s addresses');
    assert.equal(container.ports.find((p: { name: string }) => p.name === 'http')?.containerPort, 8080);
  });

  it('give the Service and the ServiceMonitor the labels, port and job the alerts and the dashboard use', () => {
    const [svc] = docs('manifests', 'agent', 'service.yaml');
    assert.equal(svc!.spec.clusterIP, 'None');
    assert.deepEqual(svc!.spec.selector, podLabels);
    const [sm] = docs('manifests', 'monitoring', 'servicemonitor.yaml');
    assert.deepEqual(sm!.spec.selector.matchLabels, { 'app.kubernetes.io/name': svc!.metadata.labels!['app.kubernetes.io/name'] });
    assert.deepEqual(sm!.spec.endpoints.map((e: { port: string }) => e.port), [svc!.spec.ports[0].name]);
    assert.equal(svc!.metadata.labels![sm!.spec.jobLabel], agentJob, 'the job label the alerts and the dashboard select');
    assert.match(read('manifests', 'monitoring', 'prometheusrule.yaml'), new RegExp(`up\\{job="${agentJob}"\\}`));
  });
});

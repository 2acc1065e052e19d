// Cilium's real Helm chart (install/kubernetes/cilium of the cilium module, at the version the lab
// runs) through a real helm: it takes what `kubectl cilium-migrate values` prints for both phases,
// piped in as the README tells users, with the lab's overrides (lab/cilium/values-lab.yaml) on
// top; and the pods it renders run exactly the images lab/images/cilium.ts builds and ask for
// nothing this machine refuses. Needs `make bins` (helm and the chart, cached).
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { ciliumImages, ciliumVersion } from '../../lab/images/cilium.js';
import { normalizeReference } from '../../lab/images/oci.js';
import { repoRoot, runPlugin } from '../harness/plugin.js';

interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  env?: { name: string; value?: string }[];
  securityContext?: { capabilities?: { add?: string[] } };
}
interface Doc {
  kind: string;
  metadata: { name: string };
  data?: Record<string, string>;
  spec?: { template?: { spec: { containers: Container[]; initContainers?: Container[] } } };
}

const apiHost = '10.250.0.1';

/** The image names the lab builds for Cilium (lab/images/cilium.ts). */
function builtImages(version: string): string[] {
  return ciliumImages(version).flatMap((i) => i.names);
}

function chartCache(): { helm: string; chart: string } {
  const dir = execFileSync(join(repoRoot, 'lab', 'bins', 'build.sh'), ['--dir', 'cilium-chart'], { encoding: 'utf8' }).trim();
  if (!existsSync(join(dir, '.complete'))) throw new Error(`helm and Cilium's chart not found in ${dir}; build them with "make bins"`);
  return { helm: join(dir, 'helm'), chart: join(dir, 'chart') };
}

/** `helm ARGS` with `stdin` on its standard input; rejects with helm's message on failure. */
function helm(binary: string, args: string[], stdin: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`helm ${args.join(' ')} exited ${code}: ${err}`))));
    child.stdin.end(stdin);
  });
}

describe("Cilium's chart through a real helm", () => {
  const version = ciliumVersion(repoRoot);
  const rendered = new Map<string, Doc[]>();

  before(async () => {
    const { helm: binary, chart } = chartCache();
    for (const phase of ['initial', 'final']) {
      const values = await runPlugin(['values', '--phase', phase, '--cilium-version', version]);
      assert.equal(values.code, 0, values.stderr);
      const out = await helm(binary, ['template', 'cilium', chart, '--namespace', 'kube-system', '-f', '-',
        '-f', join(repoRoot, 'lab', 'cilium', 'values-lab.yaml'), '--set', `k8sServiceHost=${apiHost}`, '--set', 'k8sServicePort=6443'], values.stdout);
      rendered.set(phase, parseAllDocuments(out).map((d) => d.toJS() as Doc).filter(Boolean));
    }
  });

  const config = (phase: string) => {
    const cm = rendered.get(phase)!.find((d) => d.kind === 'ConfigMap' && d.metadata.name === 'cilium-config');
    assert.ok(cm?.data, `the ${phase} render has cilium-config`);
    return cm.data;
  };
  const podSpecs = (phase: string) => rendered.get(phase)!.flatMap((d) => (d.spec?.template ? [{ owner: `${d.kind}/${d.metadata.name}`, spec: d.spec.template.spec }] : []));
  const containers = (phase: string) => podSpecs(phase).flatMap(({ owner, spec }) => [...spec.containers, ...(spec.initContainers ?? [])].map((c) => ({ owner, c })));

  it('renders the initial values: a second VXLAN overlay on its own port, cluster-pool IPAM on the new CIDR, no CNI config, no policy', () => {
    const c = config('initial');
    assert.equal(c['routing-mode'], 'tunnel');
    assert.equal(c['tunnel-protocol'], 'vxlan');
    assert.equal(c['tunnel-port'], '8473');
    assert.equal(c['ipam'], 'cluster-pool');
    assert.equal(c['cluster-pool-ipv4-cidr'], '10.245.0.0/16');
    assert.equal(c['custom-cni-conf'], 'true');
    assert.equal(c['write-cni-conf-when-ready'], undefined, 'no node writes a CNI config before a CiliumNodeConfig selects it');
    assert.equal(c['enable-policy'], 'never');
    assert.equal(c['enable-host-legacy-routing'], 'true');
    assert.equal(c['unmanaged-pod-watcher-interval'], '0', 'the operator leaves pods on legacy nodes alone');
  });

  it('renders the final values: Cilium writes its CNI config everywhere, enforces policies, restarts unmanaged pods', () => {
    const c = config('final');
    assert.equal(c['custom-cni-conf'], 'false');
    assert.equal(c['write-cni-conf-when-ready'], '/host/etc/cni/net.d/05-cilium.conflist');
    assert.equal(c['enable-policy'], 'default');
    assert.notEqual(c['unmanaged-pod-watcher-interval'], '0');
    assert.equal(c['tunnel-port'], '8473', 'the overlay stays on its port');
  });

  it("with the lab's overrides, runs only the images the lab builds, asks for nothing this machine refuses, and reaches the lab's API server", () => {
    for (const phase of ['initial', 'final']) {
      const used = [...new Set(containers(phase).map(({ c }) => normalizeReference(c.image)))].sort();
      assert.deepEqual(used, builtImages(version).sort(), `${phase}: the images the chart's pods run`);
      assert.ok(!rendered.get(phase)!.some((d) => d.metadata.name === 'cilium-envoy'), `${phase}: no envoy DaemonSet`);
      const c = config(phase);
      assert.equal(c['enable-l7-proxy'], 'false');
      assert.equal(c['bpf-lb-sock'], 'false');
      assert.equal(c['kube-proxy-replacement'], 'false');
      for (const { owner, c: ctr } of containers(phase)) {
        // runc here: "unable to apply caps: operation not permitted" (root's bounding set lacks it).
        assert.ok(!(ctr.securityContext?.capabilities?.add ?? []).includes('SYS_RESOURCE'), `${phase}: ${owner} ${ctr.name} asks for CAP_SYS_RESOURCE`);
        const script = [...(ctr.command ?? []), ...(ctr.args ?? [])].join(' ');
        assert.ok(!script.includes('ns/cgroup'), `${phase}: ${owner} ${ctr.name} enters PID 1's cgroup namespace: ${script}`);
      }
      const agent = podSpecs(phase).find((p) => p.owner === 'DaemonSet/cilium')!.spec.containers.find((x) => x.name === 'cilium-agent')!;
      assert.equal(agent.env?.find((e) => e.name === 'KUBERNETES_SERVICE_HOST')?.value, apiHost);
    }
  });
});

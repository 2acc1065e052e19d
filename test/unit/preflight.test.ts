// preflight's judgement (pure) for every source layout: Flannel, Calico with its pools, encapsulation
// and node-address autodetection, AWS-CNI, Cilium in another namespace, Cilium 1.13.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { detectLegacy } from '../../cmd/migration/legacy-cni.js';
import { preflightChecks, type Check, type PreflightFacts } from '../../cmd/migration/preflight.js';
import type { k8s } from '../../lib/kube.js';

const ciliumConfig = { 'custom-cni-conf': 'true', ipam: 'cluster-pool', 'cluster-pool-ipv4-cidr': '10.245.0.0/16', 'routing-mode': 'tunnel', 'tunnel-protocol': 'vxlan', 'tunnel-port': '8473' };
const base: PreflightFacts = {
  legacy: { kind: 'flannel', daemonSet: 'kube-flannel/kube-flannel-ds', pools: ['10.244.0.0/16'], poolSource: 'net-conf.json in kube-flannel/kube-flannel-cfg', tunnels: [{ protocol: 'vxlan', port: 8472 }] },
  ciliumNamespace: 'kube-system',
  ciliumNamespaces: ['kube-system'],
  ciliumConfig,
  ciliumImage: 'quay.io/cilium/cilium:v1.18.3',
  cncVersions: ['v2', 'v2alpha1'],
  nodes: [{ name: 'n1', internalIPs: ['172.18.0.2'] }],
  agentNodes: new Set(['n1']),
  zeroDisruptionPdbs: [],
  networkPolicies: 0,
  deniedPermissions: [],
  checkedPermissions: 50,
  serviceCidr: '10.96.0.0/12',
  ciliumCidrFlag: '10.245.0.0/16',
};
const check = (facts: Partial<PreflightFacts>, name: string): Check | undefined => preflightChecks({ ...base, ...facts }).find((c) => c.name === name);
const calicoNode = (env: { name: string; value: string }[]): k8s.V1DaemonSet => ({
  metadata: { namespace: 'kube-system', name: 'calico-node' },
  spec: { selector: {}, template: { spec: { containers: [{ name: 'calico-node', image: 'docker.io/calico/node:v3.28.5', env }] } } },
});

describe('preflight checks', () => {
  it('passes every check on the seed\'s layout', () => {
    assert.deepEqual(preflightChecks(base).filter((c) => c.result !== 'pass'), []);
    assert.equal(check({}, 'legacy CNI')!.detail, 'flannel (DaemonSet kube-flannel/kube-flannel-ds), pod CIDR 10.244.0.0/16 (net-conf.json in kube-flannel/kube-flannel-cfg), VXLAN on UDP 8472');
  });

  it('warns about Calico\'s first-found autodetection with the exact fix, and passes kubernetes-internal-ip', () => {
    const risky = check({ legacy: detectLegacy({ daemonSets: [calicoNode([{ name: 'CALICO_IPV4POOL_IPIP', value: 'Always' }])], configMaps: {} }) }, 'Calico node address')!;
    assert.equal(risky.result, 'warn');
    assert.match(risky.detail, /first-found, which can pick Cilium's cilium_host interface/);
    assert.match(risky.fix!, /^kubectl -n kube-system set env daemonset\/calico-node -c calico-node IP_AUTODETECTION_METHOD=kubernetes-internal-ip/);
    const safe = check({ legacy: detectLegacy({ daemonSets: [calicoNode([{ name: 'IP_AUTODETECTION_METHOD', value: 'kubernetes-internal-ip' }])], configMaps: {} }) }, 'Calico node address')!;
    assert.equal(safe.result, 'pass');
    assert.equal(check({}, 'Calico node address'), undefined, 'not a check for Flannel');
  });

  it('checks the Cilium CIDR against every Calico pool', () => {
    const legacy = detectLegacy({ daemonSets: [calicoNode([])], configMaps: {}, ipPools: [{ spec: { cidr: '192.168.0.0/16' } }, { spec: { cidr: '10.245.128.0/17' } }] });
    const c = check({ legacy }, 'Cilium CIDR distinct')!;
    assert.equal(c.result, 'fail');
    assert.match(c.detail, /10\.245\.0\.0\/16 overlaps the legacy pod CIDR 10\.245\.128\.0\/17/);
  });

  const tunnels: [string, PreflightFacts['legacy'], Record<string, string>, 'pass' | 'fail', RegExp][] = [
    ['Flannel and Cilium both on 8472', base.legacy, { ...ciliumConfig, 'tunnel-port': '8472' }, 'fail', /Cilium \(VXLAN on UDP 8472\) and flannel \(VXLAN on UDP 8472\) both bind UDP 8472/],
    ['Calico IP-in-IP next to Cilium on 4789 (no port of its own)', { kind: 'calico', daemonSet: 'kube-system/calico-node', pools: ['192.168.0.0/16'], tunnels: [{ protocol: 'ipip' }] }, { ...ciliumConfig, 'tunnel-port': '4789' }, 'pass', /calico: IP-in-IP/],
    ['Calico VXLAN 4789 next to Cilium on 4789', { kind: 'calico', daemonSet: 'kube-system/calico-node', pools: ['192.168.0.0/16'], tunnels: [{ protocol: 'vxlan', port: 4789 }] }, { ...ciliumConfig, 'tunnel-port': '4789' }, 'fail', /both bind UDP 4789/],
    ['AWS-CNI next to Cilium\'s default port', { kind: 'aws-cni', daemonSet: 'kube-system/aws-node', pools: [], tunnels: [{ protocol: 'none' }] }, { ...ciliumConfig, 'tunnel-port': '' }, 'pass', /Cilium VXLAN on UDP 8472; aws-cni: no tunnel/],
  ];
  for (const [name, legacy, config, result, detail] of tunnels) {
    it(`tunnel ports: ${result} for ${name}`, () => {
      const c = check({ legacy, ciliumConfig: config }, 'tunnel ports')!;
      assert.equal(c.result, result);
      assert.match(c.detail, detail);
    });
  }

  it('describes AWS-CNI by its VPC addresses', () => {
    assert.match(check({ legacy: { kind: 'aws-cni', daemonSet: 'kube-system/aws-node', pools: [], tunnels: [{ protocol: 'none' }] } }, 'legacy CNI')!.detail, /aws-cni \(DaemonSet kube-system\/aws-node\), VPC addresses \(no pod CIDR of its own\), no tunnel/);
  });

  it('names the namespace Cilium really runs in when --cilium-namespace is wrong', () => {
    const c = check({ ciliumConfig: undefined, ciliumNamespaces: ['cilium'], ciliumImage: undefined }, 'Cilium installed')!;
    assert.equal(c.result, 'fail');
    assert.match(c.detail, /no cilium-config ConfigMap in kube-system; a Cilium DaemonSet runs in cilium/);
    assert.match(c.fix!, /--cilium-namespace cilium/);
  });

  it('refuses Cilium 1.13 (end of life, CNI config from a postStart script), passes 1.14', () => {
    const old = check({ ciliumImage: 'quay.io/cilium/cilium:v1.13.18@sha256:0123' }, 'Cilium version')!;
    assert.equal(old.result, 'fail');
    assert.match(old.detail, /1\.13 is end of life.*postStart script reading cilium-config \(05-cilium\.conf\)/);
    assert.match(old.fix!, /1\.14 or newer/);
    assert.equal(check({ ciliumImage: 'quay.io/cilium/cilium:v1.14.0' }, 'Cilium version')!.result, 'pass');
    assert.equal(check({ ciliumImage: 'registry.local/cilium:latest' }, 'Cilium version')!.result, 'warn');
  });
});

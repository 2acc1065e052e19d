// The legacy CNI recognised by what it is (cmd/migration/legacy-cni.ts): Flannel by its image and its
// net-conf.json, Calico by calico-node or the Tigera operator's Installation with its pools and
// encapsulation, AWS-CNI by kube-system/aws-node; its tunnels; Calico's node-address autodetection;
// and exactly the objects of its manifest that finalize may delete.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  autodetectionRisky,
  configMapsToRead,
  detectLegacy,
  flannelTunnels,
  imageRepository,
  operatorAutodetectionMethod,
  type LegacyFacts,
} from '../../cmd/migration/legacy-cni.js';
import { legacyRemoval, objectName, type LegacyInventory } from '../../cmd/migration/legacy-removal.js';
import type { k8s } from '../../lib/kube.js';

type Env = { name: string; value?: string; valueFrom?: { configMapKeyRef: { name: string; key: string } } };
const ds = (ns: string, name: string, image: string, extra: { env?: Env[]; volumes?: { name: string; configMap: { name: string } }[]; sa?: string; containerName?: string } = {}): k8s.V1DaemonSet => ({
  metadata: { namespace: ns, name },
  spec: {
    selector: {},
    template: {
      spec: {
        ...(extra.sa ? { serviceAccountName: extra.sa } : {}),
        volumes: extra.volumes ?? [],
        containers: [{ name: extra.containerName ?? name, image, env: extra.env ?? [] }],
      },
    },
  },
});
const netConf = (conf: unknown) => ({ 'net-conf.json': JSON.stringify(conf), 'cni-conf.json': '{}' });
const facts = (daemonSets: k8s.V1DaemonSet[], extra: Partial<LegacyFacts> = {}): LegacyFacts => ({ daemonSets, configMaps: {}, ...extra });

// kube-flannel.yml (flannel-io/flannel v0.28.10 Documentation/): the DaemonSet mounts kube-flannel-cfg as flannel-cfg.
const flannelDs = ds('kube-flannel', 'kube-flannel-ds', 'ghcr.io/flannel-io/flannel:v0.28.10', { sa: 'flannel', volumes: [{ name: 'flannel-cfg', configMap: { name: 'kube-flannel-cfg' } }], containerName: 'kube-flannel' });
const flannelCm = { 'kube-flannel/kube-flannel-cfg': netConf({ Network: '10.244.0.0/16', EnableNFTables: false, Backend: { Type: 'vxlan' } }) };
// calico.yaml (projectcalico/calico manifests/): calico-node in kube-system, IP-in-IP, no IP_AUTODETECTION_METHOD.
const calicoEnv: Env[] = [
  { name: 'CALICO_NETWORKING_BACKEND', valueFrom: { configMapKeyRef: { name: 'calico-config', key: 'calico_backend' } } },
  { name: 'IP', value: 'autodetect' },
  { name: 'CALICO_IPV4POOL_IPIP', value: 'Always' },
  { name: 'CALICO_IPV4POOL_VXLAN', value: 'Never' },
];
const calicoDs = (env: Env[] = calicoEnv, ns = 'kube-system') => ds(ns, 'calico-node', 'docker.io/calico/node:v3.28.5', { env, sa: 'calico-node' });
const awsDs = ds('kube-system', 'aws-node', '602401143452.dkr.ecr.us-west-2.amazonaws.com/amazon-k8s-cni:v1.18.3');

describe('imageRepository', () => {
  const table: [string, string][] = [
    ['ghcr.io/flannel-io/flannel:v0.28.10', 'flannel-io/flannel'],
    ['docker.io/flannel/flannel:v0.22.0@sha256:abc', 'flannel/flannel'],
    ['flannel/flannel', 'flannel/flannel'],
    ['localhost:5000/calico/node:v3.28.5', 'calico/node'],
    ['602401143452.dkr.ecr.us-west-2.amazonaws.com/amazon-k8s-cni:v1.18.3', 'amazon-k8s-cni'],
  ];
  for (const [image, want] of table) it(`${image} -> ${want}`, () => assert.equal(imageRepository(image), want));
});

describe('detectLegacy: Flannel', () => {
  it('recognises kube-flannel.yml by its image and the net-conf.json it mounts', () => {
    const l = detectLegacy(facts([flannelDs], { configMaps: flannelCm }))!;
    assert.equal(l.kind, 'flannel');
    assert.equal(l.daemonSet, 'kube-flannel/kube-flannel-ds');
    assert.deepEqual(l.config, { apiVersion: 'v1', kind: 'ConfigMap', namespace: 'kube-flannel', name: 'kube-flannel-cfg' });
    assert.deepEqual(l.pools, ['10.244.0.0/16']);
    assert.deepEqual(l.tunnels, [{ protocol: 'vxlan', port: 8472 }]);
    assert.equal(l.nftables, false);
  });

  it('recognises an older manifest in kube-system (kube-flannel-ds-amd64, coreos image) and a k3s-like network', () => {
    const old = ds('kube-system', 'kube-flannel-ds-amd64', 'quay.io/coreos/flannel:v0.11.0-amd64', { volumes: [{ name: 'flannel-cfg', configMap: { name: 'kube-flannel-cfg' } }] });
    const l = detectLegacy(facts([old], { configMaps: { 'kube-system/kube-flannel-cfg': netConf({ Network: '10.42.0.0/16', Backend: { Type: 'vxlan', Port: 8999 } }) } }))!;
    assert.deepEqual([l.kind, l.daemonSet, l.pools, l.tunnels], ['flannel', 'kube-system/kube-flannel-ds-amd64', ['10.42.0.0/16'], [{ protocol: 'vxlan', port: 8999 }]]);
  });

  it('sees nftables mode (EnableNFTables)', () => {
    const l = detectLegacy(facts([flannelDs], { configMaps: { 'kube-flannel/kube-flannel-cfg': netConf({ Network: '10.244.0.0/16', EnableNFTables: true, Backend: { Type: 'vxlan' } }) } }))!;
    assert.equal(l.nftables, true);
  });

  it('does not take anything with "flannel" in its name for Flannel (a monitoring DaemonSet called flannel-exporter)', () => {
    const exporter = ds('monitoring', 'flannel-exporter', 'quay.io/prometheus/node-exporter:v1.8.0');
    assert.equal(detectLegacy(facts([exporter], { configMaps: { 'monitoring/kube-flannel-cfg': netConf({ Network: '10.244.0.0/16' }) } })), undefined);
  });

  it('does not take a DaemonSet running the flannel image without a net-conf.json for Flannel\'s', () => {
    assert.equal(detectLegacy(facts([flannelDs], { configMaps: { 'kube-flannel/kube-flannel-cfg': { 'cni-conf.json': '{}' } } })), undefined);
  });

  it('asks to read the ConfigMaps a flannel DaemonSet uses, and kube-flannel-cfg', () => {
    assert.deepEqual(configMapsToRead([flannelDs, calicoDs()]), [{ namespace: 'kube-flannel', name: 'kube-flannel-cfg' }]);
    const other = ds('x', 'f', 'flannel/flannel:v1', { volumes: [{ name: 'c', configMap: { name: 'my-net' } }] });
    assert.deepEqual(configMapsToRead([other]).map((c) => c.name), ['my-net', 'kube-flannel-cfg']);
  });

  const backends: [unknown, unknown][] = [
    [undefined, [{ protocol: 'udp', port: 8285 }]],
    [{ Type: 'vxlan' }, [{ protocol: 'vxlan', port: 8472 }]],
    [{ type: 'VXLAN', port: 4790 }, [{ protocol: 'vxlan', port: 4790 }]],
    [{ Type: 'host-gw' }, [{ protocol: 'none' }]],
    [{ Type: 'wireguard' }, [{ protocol: 'wireguard', port: 51820 }]],
    [{ Type: 'ipip' }, [{ protocol: 'ipip' }]],
    [{ Type: 'alloc' }, []],
  ];
  for (const [backend, want] of backends) it(`Backend ${JSON.stringify(backend)} binds ${JSON.stringify(want)}`, () => assert.deepEqual(flannelTunnels(backend), want));
});

describe('detectLegacy: Calico', () => {
  it('reads calico.yaml\'s DaemonSet: pool from CALICO_IPV4POOL_CIDR (default 192.168.0.0/16), IP-in-IP, first-found autodetection', () => {
    const l = detectLegacy(facts([calicoDs()]))!;
    assert.deepEqual([l.kind, l.daemonSet, l.installation, l.pools, l.tunnels], ['calico', 'kube-system/calico-node', undefined, ['192.168.0.0/16'], [{ protocol: 'ipip' }]]);
    assert.deepEqual(l.autodetection, { method: 'first-found', risky: true, fix: 'kubectl -n kube-system set env daemonset/calico-node -c calico-node IP_AUTODETECTION_METHOD=kubernetes-internal-ip' });
  });

  it('prefers the IPPools it allocates from, with VXLAN on FelixConfiguration\'s port', () => {
    const pools = [
      { metadata: { name: 'default-ipv4-ippool' }, spec: { cidr: '192.168.0.0/16', ipipMode: 'Never', vxlanMode: 'Always' } },
      { metadata: { name: 'old' }, spec: { cidr: '172.20.0.0/16', ipipMode: 'Always', disabled: true } },
    ];
    const l = detectLegacy(facts([calicoDs()], { ipPools: pools, felixVxlanPort: 4790 }))!;
    assert.deepEqual(l.pools, ['192.168.0.0/16', '172.20.0.0/16']);
    assert.equal(l.poolSource, 'IPPools (crd.projectcalico.org/v1)');
    assert.deepEqual(l.tunnels, [{ protocol: 'vxlan', port: 4790 }], 'a disabled pool allocates nothing: no IP-in-IP');
  });

  it('takes FELIX_VXLANPORT on calico-node over the FelixConfiguration', () => {
    const l = detectLegacy(facts([calicoDs([...calicoEnv, { name: 'FELIX_VXLANPORT', value: '8473' }])], { ipPools: [{ spec: { cidr: '192.168.0.0/16', vxlanMode: 'CrossSubnet' } }], felixVxlanPort: 4790 }))!;
    assert.deepEqual(l.tunnels, [{ protocol: 'vxlan', port: 8473 }]);
  });

  it('sees felix\'s nftables mode: FELIX_NFTABLESMODE on calico-node over the FelixConfiguration, and the operator\'s linuxDataplane Nftables', () => {
    const nft = (env: Env[], extra: Partial<LegacyFacts> = {}) => detectLegacy(facts([calicoDs([...calicoEnv, ...env])], extra))!.nftables ?? false;
    assert.equal(nft([]), false);
    assert.equal(nft([{ name: 'FELIX_NFTABLESMODE', value: 'Enabled' }]), true);
    assert.equal(nft([], { felixNftablesMode: 'Enabled' }), true);
    assert.equal(nft([{ name: 'FELIX_NFTABLESMODE', value: 'Disabled' }], { felixNftablesMode: 'Enabled' }), false);
    const installation = { metadata: { name: 'default' }, spec: { calicoNetwork: { linuxDataplane: 'Nftables', ipPools: [{ cidr: '192.168.0.0/16', encapsulation: 'VXLAN' }] } } };
    assert.equal(detectLegacy(facts([calicoDs([], 'calico-system')], { installations: [installation] }))!.nftables, true);
  });

  it('sees pools that encapsulate nothing (BGP) as no tunnel', () => {
    const l = detectLegacy(facts([calicoDs()], { ipPools: [{ spec: { cidr: '192.168.0.0/16', ipipMode: 'Never', vxlanMode: 'Never' } }] }))!;
    assert.deepEqual(l.tunnels, [{ protocol: 'none' }]);
  });

  it('recognises the Tigera operator by its Installation, pools and autodetection from it', () => {
    const installation = { metadata: { name: 'default' }, spec: { calicoNetwork: { ipPools: [{ cidr: '192.168.0.0/16', encapsulation: 'VXLANCrossSubnet' }], nodeAddressAutodetectionV4: { firstFound: true } } } };
    const l = detectLegacy(facts([calicoDs([], 'calico-system')], { installations: [installation] }))!;
    assert.deepEqual([l.kind, l.installation, l.daemonSet, l.pools, l.tunnels], ['calico', 'default', 'calico-system/calico-node', ['192.168.0.0/16'], [{ protocol: 'vxlan', port: 4789 }]]);
    assert.equal(l.autodetection?.risky, true);
    assert.equal(l.autodetection?.fix, `kubectl patch installation default --type=merge -p '{"spec":{"calicoNetwork":{"nodeAddressAutodetectionV4":{"firstFound":null,"kubernetes":"NodeInternalIP"}}}}'`);
  });

  it('recognises an Installation before the operator made calico-node, IP-in-IP by default', () => {
    const l = detectLegacy(facts([], { installations: [{ metadata: { name: 'default' }, spec: { calicoNetwork: { ipPools: [{ cidr: '10.48.0.0/16' }], nodeAddressAutodetectionV4: { kubernetes: 'NodeInternalIP' } } } }] }))!;
    assert.deepEqual([l.installation, l.daemonSet, l.tunnels, l.autodetection?.risky], ['default', undefined, [{ protocol: 'ipip' }], false]);
  });

  it('does not take a calico-node DaemonSet in another namespace, or running another image, for Calico', () => {
    assert.equal(detectLegacy(facts([calicoDs(calicoEnv, 'default')])), undefined);
    assert.equal(detectLegacy(facts([ds('kube-system', 'calico-node', 'busybox:1.36')])), undefined);
  });

  const methods: [string, boolean][] = [
    ['first-found', true],
    ['kubernetes-internal-ip', false],
    ['interface=eth0', false],
    ['interface=eth.*,ens.*', false],
    ['interface=.*', true],
    ['skip-interface=cilium.*', false],
    ['skip-interface=docker.*', true],
    ['can-reach=8.8.8.8', true],
    ['cidr=10.0.0.0/8', true],
  ];
  for (const [method, risky] of methods) it(`IP_AUTODETECTION_METHOD=${method} ${risky ? 'can' : 'cannot'} pick cilium_host`, () => assert.equal(autodetectionRisky(method), risky));

  it('reads the operator\'s nodeAddressAutodetectionV4 as calico-node\'s method', () => {
    assert.equal(operatorAutodetectionMethod(undefined), 'first-found');
    assert.equal(operatorAutodetectionMethod({ kubernetes: 'NodeInternalIP' }), 'kubernetes-internal-ip');
    assert.equal(operatorAutodetectionMethod({ interface: 'eth0' }), 'interface=eth0');
    assert.equal(operatorAutodetectionMethod({ skipInterface: 'cilium.*' }), 'skip-interface=cilium.*');
    assert.equal(operatorAutodetectionMethod({ cidrs: ['10.0.0.0/8'] }), 'cidr=10.0.0.0/8');
  });

  it('leaves autodetection off the table when calico-node has a fixed IP', () => {
    const l = detectLegacy(facts([calicoDs([{ name: 'IP', value: '10.1.2.3' }])]))!;
    assert.equal(l.autodetection?.risky, false);
  });
});

describe('detectLegacy: AWS-CNI', () => {
  it('recognises kube-system/aws-node: VPC addresses, no pod CIDR, no tunnel', () => {
    assert.deepEqual(detectLegacy(facts([awsDs])), { kind: 'aws-cni', daemonSet: 'kube-system/aws-node', pools: [], tunnels: [{ protocol: 'none' }] });
  });
  it('not an aws-node running another image', () => assert.equal(detectLegacy(facts([ds('kube-system', 'aws-node', 'nginx')])), undefined));
});

describe('legacyRemoval', () => {
  const flannel = detectLegacy(facts([flannelDs], { configMaps: flannelCm }))!;
  const binding = (name: string, role: string, subjects: { name: string; namespace: string }[]) => ({ name, roleRef: { kind: 'ClusterRole', name: role }, subjects: subjects.map((s) => ({ kind: 'ServiceAccount', ...s })) });
  const flannelInventory = (extra: Partial<LegacyInventory> = {}): LegacyInventory => ({
    daemonSet: flannelDs,
    deployments: [],
    serviceAccounts: ['kube-flannel/flannel', 'kube-flannel/default'],
    clusterRoleBindings: [binding('flannel', 'flannel', [{ name: 'flannel', namespace: 'kube-flannel' }]), binding('system:other', 'view', [{ name: 'x', namespace: 'kube-system' }])],
    clusterRoles: ['flannel', 'view'],
    configMaps: ['kube-flannel/kube-flannel-cfg', 'kube-flannel/kube-root-ca.crt'],
    namespaceContents: { namespace: 'kube-flannel', pods: [{ name: 'kube-flannel-ds-abcde', owner: 'DaemonSet/kube-flannel-ds' }], others: ['DaemonSet/kube-flannel-ds', 'ConfigMap/kube-flannel-cfg', 'ServiceAccount/flannel'] },
    ...extra,
  });

  it('removes what kube-flannel.yml created: DaemonSet, ConfigMap, RBAC, ServiceAccount, then the namespace', () => {
    const r = legacyRemoval(flannel, flannelInventory());
    assert.deepEqual(r.objects.map(objectName), [
      'DaemonSet kube-flannel/kube-flannel-ds',
      'ConfigMap kube-flannel/kube-flannel-cfg',
      'ClusterRoleBinding flannel',
      'ClusterRole flannel',
      'ServiceAccount kube-flannel/flannel',
      'Namespace kube-flannel',
    ]);
  });

  it('keeps the namespace when something else lives there, and says what', () => {
    const r = legacyRemoval(flannel, flannelInventory({ namespaceContents: { namespace: 'kube-flannel', pods: [{ name: 'debug', owner: undefined }], others: ['Deployment/mine'] } }));
    assert.ok(!r.objects.some((o) => o.kind === 'Namespace'));
    assert.match(r.notes.join('\n'), /kept namespace kube-flannel: it also holds pod debug, Deployment\/mine/);
  });

  it('in kube-system (older manifests) removes only Flannel\'s own objects, never the namespace, and no role another binding uses', () => {
    const old = ds('kube-system', 'kube-flannel-ds', 'flannel/flannel:v0.15.1', { sa: 'flannel', volumes: [{ name: 'flannel-cfg', configMap: { name: 'kube-flannel-cfg' } }] });
    const l = detectLegacy(facts([old], { configMaps: { 'kube-system/kube-flannel-cfg': netConf({ Network: '10.244.0.0/16', Backend: { Type: 'vxlan' } }) } }))!;
    const r = legacyRemoval(l, {
      daemonSet: old,
      deployments: [],
      serviceAccounts: ['kube-system/flannel', 'kube-system/coredns'],
      clusterRoleBindings: [
        binding('flannel', 'flannel', [{ name: 'flannel', namespace: 'kube-system' }]),
        // A binding that also names someone else is not Flannel's alone.
        binding('shared', 'nodes-reader', [{ name: 'flannel', namespace: 'kube-system' }, { name: 'coredns', namespace: 'kube-system' }]),
        // Flannel's role, bound to someone else too: it stays.
        binding('flannel-too', 'flannel-extra', [{ name: 'flannel', namespace: 'kube-system' }]),
        binding('reuse', 'flannel-extra', [{ name: 'coredns', namespace: 'kube-system' }]),
      ],
      clusterRoles: ['flannel', 'nodes-reader', 'flannel-extra'],
      configMaps: ['kube-system/kube-flannel-cfg', 'kube-system/coredns'],
    });
    assert.deepEqual(r.objects.map(objectName), [
      'DaemonSet kube-system/kube-flannel-ds',
      'ConfigMap kube-system/kube-flannel-cfg',
      'ClusterRoleBinding flannel',
      'ClusterRoleBinding flannel-too',
      'ClusterRole flannel',
      'ServiceAccount kube-system/flannel',
    ]);
  });

  it('removes calico.yaml\'s calico-node and calico-kube-controllers with their config and RBAC, and keeps the CRDs', () => {
    const l = detectLegacy(facts([calicoDs()]))!;
    const kc: k8s.V1Deployment = { metadata: { namespace: 'kube-system', name: 'calico-kube-controllers' }, spec: { selector: {}, template: { spec: { serviceAccountName: 'calico-kube-controllers', containers: [{ name: 'calico-kube-controllers', image: 'docker.io/calico/kube-controllers:v3.28.5' }] } } } };
    const coredns: k8s.V1Deployment = { metadata: { namespace: 'kube-system', name: 'coredns' }, spec: { selector: {}, template: { spec: { serviceAccountName: 'coredns', containers: [{ name: 'coredns', image: 'registry.k8s.io/coredns/coredns:v1.11.1' }] } } } };
    const r = legacyRemoval(l, {
      daemonSet: calicoDs(),
      deployments: [kc, coredns],
      serviceAccounts: ['kube-system/calico-node', 'kube-system/calico-kube-controllers', 'kube-system/calico-cni-plugin', 'kube-system/coredns'],
      clusterRoleBindings: ['calico-node', 'calico-kube-controllers', 'calico-cni-plugin'].map((n) => binding(n, n, [{ name: n, namespace: 'kube-system' }])).concat([binding('system:coredns', 'system:coredns', [{ name: 'coredns', namespace: 'kube-system' }])]),
      clusterRoles: ['calico-node', 'calico-kube-controllers', 'calico-cni-plugin', 'system:coredns'],
      configMaps: ['kube-system/calico-config', 'kube-system/coredns'],
    });
    assert.deepEqual(r.objects.map(objectName), [
      'DaemonSet kube-system/calico-node',
      'Deployment kube-system/calico-kube-controllers',
      'ConfigMap kube-system/calico-config',
      'ClusterRoleBinding calico-cni-plugin',
      'ClusterRoleBinding calico-kube-controllers',
      'ClusterRoleBinding calico-node',
      'ClusterRole calico-cni-plugin',
      'ClusterRole calico-kube-controllers',
      'ClusterRole calico-node',
      'ServiceAccount kube-system/calico-cni-plugin',
      'ServiceAccount kube-system/calico-kube-controllers',
      'ServiceAccount kube-system/calico-node',
    ]);
    assert.match(r.notes.join('\n'), /CRDs \(crd\.projectcalico\.org\) stay/);
  });

  it('with the Tigera operator removes the Installation, never calico-node (the operator would recreate it)', () => {
    const l = detectLegacy(facts([calicoDs([], 'calico-system')], { installations: [{ metadata: { name: 'default' }, spec: {} }] }))!;
    const r = legacyRemoval(l, { deployments: [], serviceAccounts: [], clusterRoleBindings: [], clusterRoles: [], configMaps: [] });
    assert.deepEqual(r.objects.map(objectName), ['Installation default']);
    assert.match(r.notes[0]!, /deleting Installation default makes the operator remove calico-node \(deleting the DaemonSet would only see it recreated\)/);
  });

  it('removes only aws-node for AWS-CNI, and names the EKS add-on', () => {
    const r = legacyRemoval(detectLegacy(facts([awsDs]))!, { daemonSet: awsDs, deployments: [], serviceAccounts: ['kube-system/aws-node'], clusterRoleBindings: [], clusterRoles: [], configMaps: [] });
    assert.deepEqual(r.objects.map(objectName), ['DaemonSet kube-system/aws-node']);
    assert.match(r.notes[0]!, /vpc-cni add-on/);
  });

  it('removes nothing when the DaemonSet is gone already', () => {
    assert.deepEqual(legacyRemoval(flannel, { deployments: [], serviceAccounts: [], clusterRoleBindings: [], clusterRoles: [], configMaps: [] }).objects, []);
  });
});

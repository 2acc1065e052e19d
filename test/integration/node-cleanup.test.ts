// finalize --cleanup-nodes' host script (cmd/engine/host-command.ts) on a real network stack: in a
// network namespace of its own (nothing of this machine's netfilter or links is touched), with the
// files it removes mapped into a temporary directory (test/harness/host-sandbox.ts): Flannel's
// links, its FLANNEL-* iptables chains and, in nftables mode (EnableNFTables), its tables ip
// flannel-ipv4 and ip6 flannel-ipv6 go; Calico's cali-* chains and links go; what is not theirs stays.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { legacyCleanupScript, type CleanupKind } from '../../cmd/engine/host-command.js';
import { nodeHostPaths, readOnlyExcept } from '../harness/host-sandbox.js';

const missing = ['unshare', 'iptables', 'nft', 'ip'].filter((c) => spawnSync('sh', ['-c', `command -v ${c}`]).status !== 0);

/** Runs `setup`, then the cleanup script as a node's host would, then `show`, all in one fresh network namespace. */
function onFreshNode(kind: CleanupKind, root: string, setup: string, show: string): { before: string; after: string; status: number | null; stderr: string } {
  const script = nodeHostPaths(legacyCleanupScript(kind), root);
  const guarded = readOnlyExcept(root, ['sh', '-c', script]);
  const outer = `set -e\n${setup}\necho ---before\n${show}\nset +e\n"$@" >/dev/null 2>&1\necho "---rc $?"\n${show}`;
  const r = spawnSync('unshare', ['--net', '--', 'sh', '-c', outer, 'node', ...guarded], { encoding: 'utf8', timeout: 60_000 });
  const [before = '', rest = ''] = r.stdout.split('---before\n')[1]?.split('---rc ') ?? [];
  return { before, after: rest, status: r.status, stderr: r.stderr };
}

describe('the node cleanup script on a real network stack', () => {
  const dirs: string[] = [];
  after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
  const nodeRoot = (files: Record<string, string>) => {
    const root = mkdtempSync(join(tmpdir(), 'cleanup-node-'));
    dirs.push(root);
    for (const [path, content] of Object.entries(files)) {
      mkdirSync(join(root, path, '..'), { recursive: true });
      writeFileSync(join(root, path), content);
    }
    return root;
  };

  it('runs where unshare, iptables, nft and ip are (make system-deps installs them)', () => assert.deepEqual(missing, []));

  it('removes Flannel in iptables mode and in nftables mode, and its CNI files, keeping what is not Flannel\'s', { skip: missing.length > 0 }, () => {
    const root = nodeRoot({ 'etc/cni/net.d/05-cilium.conflist': '{}', 'etc/cni/net.d/10-flannel.conflist.cilium_bak': '{}', 'run/flannel/subnet.env': 'FLANNEL_NETWORK=10.244.0.0/16\n' });
    const setup = [
      'ip link add flannel.1 type vxlan id 1 dstport 8472 nolearning',
      'ip link add cni0 type bridge',
      // What flanneld makes with EnableNFTables=false (pkg/trafficmngr/iptables) ...
      'iptables -t nat -N FLANNEL-POSTRTG', 'iptables -t nat -A POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG', 'iptables -t nat -A FLANNEL-POSTRTG -s 10.244.0.0/16 -j RETURN',
      'iptables -t filter -N FLANNEL-FWD', 'iptables -A FORWARD -m comment --comment "flanneld forward" -j FLANNEL-FWD', 'iptables -A FLANNEL-FWD -s 10.244.0.0/16 -j ACCEPT',
      // ... and with EnableNFTables=true (pkg/trafficmngr/nftables).
      'nft add table ip flannel-ipv4', 'nft add chain ip flannel-ipv4 postrtg "{ type nat hook postrouting priority srcnat ; }"', 'nft add rule ip flannel-ipv4 postrtg ip saddr 10.244.0.0/16 masquerade',
      'nft add table ip6 flannel-ipv6',
      // Not Flannel's.
      'iptables -t nat -N KUBE-POSTROUTING', 'iptables -t nat -A POSTROUTING -j KUBE-POSTROUTING', 'nft add table ip cilium-keep',
    ].join('\n');
    const show = 'ip -o link show | cut -d: -f2 | tr -d " " | sort | tr "\\n" " "; echo; iptables-save | grep -E "^(:|-A)" | grep -v "^:[A-Z]* [A-Z]*" ; nft list tables';
    const r = onFreshNode('flannel', root, setup, show);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.before, /flannel\.1/);
    assert.match(r.before, /FLANNEL-POSTRTG/);
    assert.match(r.before, /table ip flannel-ipv4/);
    assert.match(r.after, /^0\n/, 'the script exits 0');
    assert.doesNotMatch(r.after, /flannel|FLANNEL|cni0/);
    assert.match(r.after, /KUBE-POSTROUTING/);
    assert.match(r.after, /-A POSTROUTING -j KUBE-POSTROUTING/);
    assert.match(r.after, /table ip cilium-keep/);
    assert.deepEqual(readdirSync(join(root, 'etc/cni/net.d')), ['05-cilium.conflist']);
    assert.equal(existsSync(join(root, 'run/flannel')), false);
  });

  it('removes Calico\'s cali-* chains (which jump to each other) and vxlan.calico', { skip: missing.length > 0 }, () => {
    const root = nodeRoot({ 'etc/cni/net.d/05-cilium.conflist': '{}', 'etc/cni/net.d/10-calico.conflist.cilium_bak': '{}', 'etc/cni/net.d/calico-kubeconfig': 'x' });
    const setup = [
      'ip link add vxlan.calico type vxlan id 4096 dstport 4789 nolearning',
      'iptables -t filter -N cali-FORWARD', 'iptables -t filter -N cali-from-hep-forward', 'iptables -A cali-FORWARD -j cali-from-hep-forward', 'iptables -A FORWARD -m comment --comment "cali:wUHhoiAYhphO9Mso" -j cali-FORWARD',
      'iptables -t nat -N cali-nat-outgoing', 'iptables -t nat -A POSTROUTING -j cali-nat-outgoing',
      'iptables -t filter -N KEEP-FORWARD', 'iptables -A FORWARD -j KEEP-FORWARD',
    ].join('\n');
    const show = 'ip -o link show | cut -d: -f2 | tr -d " " | sort | tr "\\n" " "; echo; iptables-save | grep -E "^(:|-A)" | grep -v "^:[A-Z]* [A-Z]*"';
    const r = onFreshNode('calico', root, setup, show);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.before, /cali-from-hep-forward/);
    assert.doesNotMatch(r.after, /cali|vxlan\.calico/);
    assert.match(r.after, /-A FORWARD -j KEEP-FORWARD/);
    assert.deepEqual(readdirSync(join(root, 'etc/cni/net.d')), ['05-cilium.conflist']);
  });

  it('removes Calico\'s nftables dataplane (felix\'s NFTablesMode Enabled: tables ip calico and ip6 calico), keeping other tables', { skip: missing.length > 0 }, () => {
    // calico-node's state directories too (hostPath mounts on a real node).
    const root = nodeRoot({ 'etc/cni/net.d/05-cilium.conflist': '{}', 'etc/cni/net.d/10-calico.conflist.cilium_bak': '{}', 'var/lib/calico/nodename': 'kind-worker', 'var/run/calico/cni-ready': '' });
    const setup = [
      'ip link add vxlan.calico type vxlan id 4096 dstport 4789 nolearning',
      // What felix makes in nftables mode: one table per family, with base chains, sets and rules.
      'nft add table ip calico', 'nft add chain ip calico filter-FORWARD "{ type filter hook forward priority filter ; }"',
      'nft add set ip calico cali40all-ipam-pools "{ type ipv4_addr ; flags interval ; }"', 'nft add element ip calico cali40all-ipam-pools "{ 192.168.0.0/16 }"',
      'nft add rule ip calico filter-FORWARD ip saddr @cali40all-ipam-pools accept',
      'nft add table ip6 calico', 'nft add chain ip6 calico filter-FORWARD "{ type filter hook forward priority filter ; }"',
      // Not Calico's.
      'nft add table ip cilium-keep', 'nft add table ip6 calico-keep',
    ].join('\n');
    const show = 'ip -o link show | cut -d: -f2 | tr -d " " | sort | tr "\\n" " "; echo; nft list tables';
    const r = onFreshNode('calico', root, setup, show);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.before, /table ip calico\n/);
    assert.match(r.before, /table ip6 calico\n/);
    assert.match(r.after, /^0\n/, 'the script exits 0');
    assert.doesNotMatch(r.after, /table ip6? calico\n|vxlan\.calico/);
    assert.match(r.after, /table ip cilium-keep/);
    assert.match(r.after, /table ip6 calico-keep/);
    assert.deepEqual(readdirSync(join(root, 'etc/cni/net.d')), ['05-cilium.conflist']);
    assert.equal(existsSync(join(root, 'var/lib/calico')) || existsSync(join(root, 'var/run/calico')), false, 'calico-node\'s state directories removed');
  });
});

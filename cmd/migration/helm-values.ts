// The Helm values of Cilium's migration mode (initial) and of the upgrade after the last node
// (final), with the key names of the target Cilium version and a comment on every key.
import { Document, YAMLMap, type Pair, type Scalar } from 'yaml';
import { PreconditionError, UsageError } from '../../lib/errors.js';
import { parseCidr } from '../../lib/cidr.js';

export type ValuesPhase = 'initial' | 'final';

export interface ValuesRequest {
  phase: ValuesPhase;
  /** Target Cilium version, "1.16" or "1.16.3". */
  ciliumVersion: string;
  ciliumCidr: string;
  tunnelPort: number;
  /** The legacy CNI's UDP tunnel port, which the Cilium tunnel must not share; 0 when it has none. */
  legacyTunnelPort: number;
}

export interface CiliumVersion {
  major: number;
  minor: number;
}

/** The oldest Cilium the plugin migrates to. */
export const oldestSupportedCilium: CiliumVersion = { major: 1, minor: 14 };

/**
 * Why the plugin cannot migrate to this Cilium version, or undefined when it can. Before 1.13 there
 * is no CiliumNodeConfig. 1.13 is end of life, and its CNI config is written by the agent pod's
 * postStart script from cilium-config (05-cilium.conf), which the per-node switch the plugin applies
 * (write-cni-conf-when-ready in the CiliumNodeConfig, from 1.14 on) does not drive: refused rather
 * than half supported.
 */
export function unsupportedCilium(v: CiliumVersion, text: string): { message: string; hint: string } | undefined {
  if (v.major === 1 && v.minor < 13) return { message: `Cilium ${text} has no CiliumNodeConfig (added in 1.13), so it cannot take over nodes one at a time`, hint: 'migrate to Cilium 1.14 or newer' };
  if (v.major === 1 && v.minor === 13) {
    return {
      message: `Cilium ${text} is not supported: 1.13 is end of life, and its CNI config comes from the agent's postStart script reading cilium-config (05-cilium.conf), not from the per-node CiliumNodeConfig this migration switches nodes with (1.14 and newer)`,
      hint: 'migrate to Cilium 1.14 or newer (a current release is best)',
    };
  }
  return undefined;
}

/** Parses "1.16", "v1.16.3"; the version's parts. */
export function parseVersion(text: string): CiliumVersion | undefined {
  const m = /^v?(\d+)\.(\d+)(?:\.\d+)?(?:[-+].*)?$/.exec(text.trim());
  return m ? { major: Number(m[1]), minor: Number(m[2]) } : undefined;
}

/** Parses "1.16", "v1.16.3"; refuses versions the migration cannot use (before 1.14, see unsupportedCilium). */
export function parseCiliumVersion(text: string): CiliumVersion {
  const v = parseVersion(text);
  if (!v) throw new UsageError(`--cilium-version ${text}: not a version`, 'use a form like 1.16 or 1.16.3');
  if (v.major !== 1) throw new UsageError(`--cilium-version ${text}: only Cilium 1.x is known`);
  const refused = unsupportedCilium(v, text);
  if (refused) throw new PreconditionError(refused.message, refused.hint);
  return v;
}

type Entry = { path: string[]; value: unknown; comment: string };

/** The values as (path, value, why) entries, in the order they are written. */
export function valuesEntries(req: ValuesRequest): Entry[] {
  const v = parseCiliumVersion(req.ciliumVersion);
  try {
    parseCidr(req.ciliumCidr);
  } catch (err) {
    throw new UsageError(`--cilium-cidr: ${(err as Error).message}`);
  }
  if (req.legacyTunnelPort > 0 && req.tunnelPort === req.legacyTunnelPort) {
    throw new UsageError(`--tunnel-port ${req.tunnelPort} is the legacy CNI's VXLAN port too`, 'both overlays bind it: pick another, 8473 in the seed ("Address already in use" otherwise)');
  }
  const final = req.phase === 'final';
  const entries: Entry[] = [
    {
      path: ['operator', 'unmanagedPodWatcher', 'restart'],
      value: final,
      comment: final
        ? 'every node is on Cilium now: let the operator restart pods Cilium does not manage'
        : 'off during the migration, or the operator keeps restarting pods (CoreDNS) that live on legacy nodes',
    },
  ];
  entries.push(
    { path: ['routingMode'], value: 'tunnel', comment: 'a second overlay next to the legacy one (Cilium >= 1.14 key; `tunnel:` is gone from 1.15)' },
    { path: ['tunnelProtocol'], value: 'vxlan', comment: 'VXLAN, on its own port below' },
  );
  entries.push(
    { path: ['tunnelPort'], value: req.tunnelPort, comment: req.legacyTunnelPort > 0 ? `not ${req.legacyTunnelPort}: the legacy overlay owns that port` : 'the legacy CNI binds no UDP tunnel port' },
    {
      path: ['cni', 'customConf'],
      value: !final,
      comment: final ? 'Cilium writes its CNI config on every node from now on' : 'Cilium writes no CNI config until a CiliumNodeConfig opts a node in',
    },
    { path: ['cni', 'uninstall'], value: false, comment: 'keep the CNI config when an agent restarts' },
    { path: ['ipam', 'mode'], value: 'cluster-pool', comment: 'live migration needs cluster-pool IPAM: Cilium hands out its own per-node CIDRs' },
  );
  // The singular key was removed in 1.14; the list exists from 1.11 on, so use it everywhere we support.
  entries.push({ path: ['ipam', 'operator', 'clusterPoolIPv4PodCIDRList'], value: [req.ciliumCidr], comment: 'distinct from the legacy pod CIDR, the service CIDR and the node network' });
  entries.push(
    {
      path: ['policyEnforcementMode'],
      value: final ? 'default' : 'never',
      comment: final ? 'enforce NetworkPolicies with Cilium now' : 'no policy enforcement while pods of both CNIs talk to each other',
    },
    {
      path: ['bpf', 'hostLegacyRouting'],
      value: true,
      comment: final ? 'may be set to false once the legacy CNI is removed and every node rebooted' : 'traffic between the overlays goes through the host routing table',
    },
  );
  return entries;
}

/** The values as a commented YAML document. */
export function valuesYaml(req: ValuesRequest): string {
  const entries = valuesEntries(req);
  const tree: Record<string, unknown> = {};
  for (const e of entries) {
    let node = tree;
    for (const key of e.path.slice(0, -1)) node = (node[key] ??= {}) as Record<string, unknown>;
    node[e.path.at(-1)!] = e.value;
  }
  // Built from a plain object, every key becomes a node that can carry a comment.
  const doc = new Document(tree);
  for (const e of entries) {
    const parent = e.path.length > 1 ? (doc.getIn(e.path.slice(0, -1), true) as YAMLMap) : (doc.contents as YAMLMap);
    const pair = parent.items.find((p: Pair) => ((p.key as Scalar).value ?? p.key) === e.path.at(-1)) as Pair<Scalar> | undefined;
    if (pair?.key) (pair.key as Scalar).commentBefore = ` ${e.comment}`;
  }
  const v = parseCiliumVersion(req.ciliumVersion);
  doc.commentBefore = ` Cilium ${v.major}.${v.minor} Helm values, ${req.phase} phase of a live migration (kubectl cilium-migrate values).\n` +
    (req.phase === 'initial'
      ? ' Install with: helm install cilium cilium/cilium -n kube-system --version <V> -f <this file>\n (in another namespace, pass it to every kubectl cilium-migrate command: --cilium-namespace)'
      : ' Apply with: helm upgrade cilium cilium/cilium -n kube-system -f <this file>; then kubectl -n kube-system rollout restart ds/cilium\n (kube-system, or Cilium\'s namespace)');
  return doc.toString();
}

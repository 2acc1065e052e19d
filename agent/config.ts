// The agent's configuration: flags, each with an environment variable (the DaemonSet sets the
// downward-API ones), validated at start so a bad value stops the agent with a message.
import yargs from 'yargs';
import ipaddr from 'ipaddr.js';
import { agentFocusProbeShare, agentFullMeshMax, agentNamespace, agentPodSelector, ciliumClusterCidr, migrationLabel } from '../lib/defaults.js';
import { parseCidr } from '../lib/cidr.js';
import { parseDuration } from '../lib/duration.js';
import { ConfigError } from '../lib/errors.js';
import type { ProbeProtocol } from '../lib/row.js';
import { version } from '../lib/version.js';

export const agentSelector = agentPodSelector;

export interface AgentConfig {
  port: number;
  node: string;
  pod: string;
  namespace: string;
  ip: string;
  legacyCidrs: string[];
  ciliumCidrs: string[];
  intervalMs: number;
  focusIntervalMs: number;
  timeoutMs: number;
  windowMs: number;
  maxPerSecond: number;
  /** The share of maxPerSecond that probes of the migration focus may take. */
  focusShare: number;
  jitter: number;
  fullMeshMax: number;
  ringSize: number;
  largePacketSize: number;
  protocols: ProbeProtocol[];
  peersFile?: string | undefined;
  kubeconfig?: string | undefined;
  agentSelector: string;
  labelKey: string;
  maxFailingSeries: number;
}

const list = (v: string) => v.split(',').map((s) => s.trim()).filter(Boolean);

function protocolList(value: string): ProbeProtocol[] {
  const items = [...new Set(list(value))];
  const bad = items.filter((p) => p !== 'icmp' && p !== 'http');
  if (bad.length || items.length === 0) throw new ConfigError(`--protocols: ${bad.length ? `unknown ${bad.join(', ')}` : 'names none'}; use icmp, http or icmp,http`);
  return items as ProbeProtocol[];
}

/** Parses and validates; throws ConfigError naming the flag (and its variable) that is wrong. */
export async function parseAgentConfig(argv: string[], env: NodeJS.ProcessEnv): Promise<AgentConfig> {
  const args = await yargs(argv)
    .scriptName('cilium-migrate-agent')
    .usage('$0 [flags]\n\nProbes peer agents across the legacy and Cilium overlays and serves this node\'s row of the reachability matrix.\nEvery flag can also be set through the environment variable named in its description.')
    .option('port', { type: 'number', default: Number(env.AGENT_PORT ?? 8080), describe: 'HTTP port of /v1/row, /v1/ping, /healthz, /readyz, /metrics (AGENT_PORT)' })
    .option('node-name', { type: 'string', default: env.NODE_NAME, describe: 'This node (NODE_NAME, downward API spec.nodeName)' })
    .option('pod-name', { type: 'string', default: env.POD_NAME, describe: 'This pod (POD_NAME, downward API metadata.name)' })
    .option('pod-namespace', { type: 'string', default: env.POD_NAMESPACE ?? agentNamespace, describe: 'This pod\'s namespace, where the other agents are (POD_NAMESPACE)' })
    .option('pod-ip', { type: 'string', default: env.POD_IP, describe: 'This pod\'s IP (POD_IP, downward API status.podIP)' })
    .option('legacy-cidrs', { type: 'string', default: env.LEGACY_CIDRS ?? '', describe: 'The legacy CNI\'s pod CIDRs, comma-separated, when known; they only add detail to messages: an address is legacy when it is neither a node\'s nor inside Cilium\'s CIDRs (LEGACY_CIDRS)' })
    .option('cilium-cidrs', { type: 'string', default: env.CILIUM_CIDRS ?? ciliumClusterCidr, describe: 'Cilium\'s cluster-pool CIDRs, comma-separated; a node\'s CiliumNode CIDRs take precedence for its pods (CILIUM_CIDRS)' })
    .option('interval', { type: 'string', default: env.PROBE_INTERVAL ?? '5s', describe: 'Time between two probes of a peer per protocol (PROBE_INTERVAL)' })
    .option('focus-interval', { type: 'string', default: env.PROBE_FOCUS_INTERVAL, describe: 'Time between probes of a peer whose node is being migrated, or of every peer while this node is; default 2s, or twice --timeout if longer, at most --interval (PROBE_FOCUS_INTERVAL)' })
    .option('timeout', { type: 'string', default: env.PROBE_TIMEOUT ?? '1s', describe: 'Per-probe timeout (PROBE_TIMEOUT)' })
    .option('window', { type: 'string', default: env.PROBE_WINDOW ?? '60s', describe: 'Sliding window of the statistics (PROBE_WINDOW)' })
    .option('max-probes-per-second', { type: 'number', default: Number(env.MAX_PROBES_PER_SECOND ?? 50), describe: 'Global probe rate limit (MAX_PROBES_PER_SECOND)' })
    .option('focus-probe-share', { type: 'number', default: Number(env.PROBE_FOCUS_SHARE ?? agentFocusProbeShare), describe: 'Share of --max-probes-per-second that probes of nodes being migrated may take, so that a large wave never starves the other cells (PROBE_FOCUS_SHARE)' })
    .option('jitter', { type: 'number', default: Number(env.PROBE_JITTER ?? 0.2), describe: 'Each next probe at interval x (1 +/- jitter) (PROBE_JITTER)' })
    .option('full-mesh-max', { type: 'number', default: Number(env.FULL_MESH_MAX ?? agentFullMeshMax), describe: 'Probe every peer up to this many (FULL_MESH_MAX)' })
    .option('ring-size', { type: 'number', default: Number(env.RING_SIZE ?? 5), describe: 'Above that, peers per destination overlay (RING_SIZE)' })
    .option('protocols', { type: 'string', default: env.PROBE_PROTOCOLS ?? 'icmp,http', describe: 'Probes to send, comma-separated: icmp (the system ping), http (/v1/ping of the peer) (PROBE_PROTOCOLS)' })
    .option('large-packet-size', { type: 'number', default: Number(env.LARGE_PACKET_SIZE ?? 0), describe: 'ICMP payload bytes of the DF large-packet probe; 0 turns it off (LARGE_PACKET_SIZE)' })
    .option('peers-file', { type: 'string', default: env.PEERS_FILE, describe: 'Read the cluster view from this JSON file instead of the Kubernetes API (PEERS_FILE)' })
    .option('kubeconfig', { type: 'string', default: env.KUBECONFIG, describe: 'Kubeconfig; in a pod the service account is used (KUBECONFIG)' })
    .option('agent-selector', { type: 'string', default: env.AGENT_SELECTOR ?? agentSelector, describe: 'Label selector of the agent pods (AGENT_SELECTOR)' })
    .option('label-key', { type: 'string', default: env.MIGRATION_LABEL ?? migrationLabel, describe: 'The label that moves a node to Cilium (MIGRATION_LABEL)' })
    .option('max-failing-series', { type: 'number', default: Number(env.MAX_FAILING_SERIES ?? 50), describe: 'Cap on per-peer metric series (MAX_FAILING_SERIES)' })
    .version(version)
    .strict()
    .exitProcess(false)
    .fail((msg, err) => {
      throw new ConfigError(err?.message ?? msg ?? 'invalid arguments', 'see cilium-migrate-agent --help');
    })
    .parseAsync();

  const need = (value: string | undefined, flag: string, variable: string) => {
    if (!value) throw new ConfigError(`--${flag} is required (or ${variable})`, 'in the DaemonSet, set it from the downward API');
    return value;
  };
  const duration = (value: string, flag: string) => {
    try {
      return parseDuration(value);
    } catch (err) {
      throw new ConfigError(`--${flag}: ${(err as Error).message}`);
    }
  };
  const cidrs = (value: string, flag: string, optional = false) => {
    const items = list(value);
    if (items.length === 0 && !optional) throw new ConfigError(`--${flag} names no CIDR`);
    for (const c of items) {
      try {
        parseCidr(c);
      } catch (err) {
        throw new ConfigError(`--${flag}: ${(err as Error).message}`);
      }
    }
    return items;
  };
  const positive = (value: number, flag: string, max = Number.MAX_SAFE_INTEGER) => {
    if (!Number.isFinite(value) || value < 0 || value > max) throw new ConfigError(`--${flag} must be a number between 0 and ${max}, not ${value}`);
    return value;
  };
  const ip = need(args['pod-ip'], 'pod-ip', 'POD_IP');
  if (!ipaddr.isValid(ip)) throw new ConfigError(`--pod-ip: "${ip}" is not an IP address`);
  const cfg: AgentConfig = {
    port: positive(args.port, 'port', 65535),
    node: need(args['node-name'], 'node-name', 'NODE_NAME'),
    pod: need(args['pod-name'], 'pod-name', 'POD_NAME'),
    namespace: need(args['pod-namespace'], 'pod-namespace', 'POD_NAMESPACE'),
    ip,
    legacyCidrs: cidrs(args['legacy-cidrs'], 'legacy-cidrs', true),
    ciliumCidrs: cidrs(args['cilium-cidrs'], 'cilium-cidrs'),
    intervalMs: duration(args.interval, 'interval'),
    focusIntervalMs: args['focus-interval'] ? duration(args['focus-interval'], 'focus-interval') : 0,
    timeoutMs: duration(args.timeout, 'timeout'),
    windowMs: duration(args.window, 'window'),
    maxPerSecond: positive(args['max-probes-per-second'], 'max-probes-per-second'),
    focusShare: positive(args['focus-probe-share'], 'focus-probe-share', 1),
    jitter: positive(args.jitter, 'jitter', 0.9),
    fullMeshMax: positive(args['full-mesh-max'], 'full-mesh-max'),
    ringSize: positive(args['ring-size'], 'ring-size'),
    largePacketSize: positive(args['large-packet-size'], 'large-packet-size', 65_000),
    protocols: protocolList(args.protocols),
    peersFile: args['peers-file'],
    kubeconfig: args.kubeconfig,
    agentSelector: args['agent-selector'],
    labelKey: args['label-key'],
    maxFailingSeries: positive(args['max-failing-series'], 'max-failing-series'),
  };
  if (cfg.port === 0) throw new ConfigError('--port must be between 1 and 65535');
  if (cfg.intervalMs < 100) throw new ConfigError('--interval must be at least 100ms');
  if (cfg.timeoutMs >= cfg.intervalMs) throw new ConfigError(`--timeout (${args.timeout}) must be shorter than --interval (${args.interval})`);
  if (args['focus-interval'] && cfg.focusIntervalMs <= cfg.timeoutMs) throw new ConfigError(`--focus-interval (${args['focus-interval']}) must be longer than --timeout (${args.timeout})`);
  // Never slower than the interval: a focus interval above it is capped.
  cfg.focusIntervalMs = Math.min(cfg.intervalMs, cfg.focusIntervalMs || Math.max(2000, 2 * cfg.timeoutMs));
  if (cfg.windowMs < cfg.intervalMs) throw new ConfigError('--window must be at least one --interval');
  if (cfg.maxPerSecond < 1) throw new ConfigError('--max-probes-per-second must be at least 1');
  if (cfg.focusShare <= 0) throw new ConfigError('--focus-probe-share must be above 0 (and at most 1)');
  if (cfg.largePacketSize > 0) cfg.protocols.push('icmp-large');
  return cfg;
}

// The agent's configuration: flags, each with an environment variable (the DaemonSet sets the
// downward-API ones), validated at start so a bad value stops the agent with one line and exit 2.
import yargs from 'yargs';
import ipaddr from 'ipaddr.js';
import { agentFocusProbeShare, agentFullMeshMax, agentNamespace, agentPodSelector, ciliumClusterCidr, migrationLabel } from '../lib/defaults.js';
import { UsageError } from '../lib/errors.js';
import { badValue, choiceList, cidrList, duration, flagCoercion, integer, labelKey, labelSelector, namespace, nodeName, objectName, podCidrLimits, port, ratio, refuseOverlap } from '../lib/flag-values.js';
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

/** What the command line asked for: a configuration to run with, or only --help/--version (printed). */
export type AgentInvocation = { kind: 'run'; config: AgentConfig } | { kind: 'shown' };

const positiveInt = (max: number) => integer(0, max);
const probeProtocols = choiceList<ProbeProtocol>(['icmp', 'http']);

/**
 * Parses and validates with the plugin's parsers (lib/flag-values): a bad value is a UsageError
 * naming the flag (and its variable), exit 2. --help and --version print and ask for nothing else.
 */
export async function parseAgentCommandLine(argv: string[], env: NodeJS.ProcessEnv): Promise<AgentInvocation> {
  let shown = false;
  const parser = yargs(argv)
    .scriptName('cilium-migrate-agent')
    .usage('$0 [flags]\n\nProbes peer agents across the legacy and Cilium overlays and serves this node\'s row of the reachability matrix.\nEvery flag can also be set through the environment variable named in its description.')
    .option('port', { type: 'string', default: env.AGENT_PORT ?? '8080', coerce: flagCoercion('port', port), describe: 'HTTP port of /v1/row, /v1/ping, /healthz, /readyz, /metrics (AGENT_PORT)' })
    .option('node-name', { type: 'string', default: env.NODE_NAME, coerce: flagCoercion('node-name', nodeName), describe: 'This node (NODE_NAME, downward API spec.nodeName)' })
    .option('pod-name', { type: 'string', default: env.POD_NAME, coerce: flagCoercion('pod-name', objectName), describe: 'This pod (POD_NAME, downward API metadata.name)' })
    .option('pod-namespace', { type: 'string', default: env.POD_NAMESPACE ?? agentNamespace, coerce: flagCoercion('pod-namespace', namespace), describe: 'This pod\'s namespace, where the other agents are (POD_NAMESPACE)' })
    .option('pod-ip', { type: 'string', default: env.POD_IP, describe: 'This pod\'s IP (POD_IP, downward API status.podIP)' })
    .option('legacy-cidrs', { type: 'string', default: env.LEGACY_CIDRS ?? '', coerce: flagCoercion('legacy-cidrs', cidrList(podCidrLimits, { optional: true })), describe: 'The legacy CNI\'s pod CIDRs, comma-separated, when known; they only add detail to messages: an address is legacy when it is neither a node\'s nor inside Cilium\'s CIDRs (LEGACY_CIDRS)' })
    .option('cilium-cidrs', { type: 'string', default: env.CILIUM_CIDRS ?? ciliumClusterCidr, coerce: flagCoercion('cilium-cidrs', cidrList(podCidrLimits)), describe: 'Cilium\'s cluster-pool CIDRs, comma-separated, none overlapping a legacy one; a node\'s CiliumNode CIDRs take precedence for its pods (CILIUM_CIDRS)' })
    .option('interval', { type: 'string', default: env.PROBE_INTERVAL ?? '5s', coerce: flagCoercion('interval', duration(100, 3_600_000)), describe: 'Time between two probes of a peer per protocol, 100ms to 1h (PROBE_INTERVAL)' })
    .option('focus-interval', { type: 'string', default: env.PROBE_FOCUS_INTERVAL, coerce: flagCoercion('focus-interval', duration(100, 3_600_000)), describe: 'Time between probes of a peer whose node is being migrated, or of every peer while this node is; default 2s, or twice --timeout if longer, at most --interval (PROBE_FOCUS_INTERVAL)' })
    .option('timeout', { type: 'string', default: env.PROBE_TIMEOUT ?? '1s', coerce: flagCoercion('timeout', duration(10, 60_000)), describe: 'Per-probe timeout, 10ms to 1m (PROBE_TIMEOUT)' })
    .option('window', { type: 'string', default: env.PROBE_WINDOW ?? '60s', coerce: flagCoercion('window', duration(1000, 24 * 3_600_000)), describe: 'Sliding window of the statistics (PROBE_WINDOW)' })
    .option('max-probes-per-second', { type: 'string', default: env.MAX_PROBES_PER_SECOND ?? '50', coerce: flagCoercion('max-probes-per-second', integer(1, 100_000)), describe: 'Global probe rate limit (MAX_PROBES_PER_SECOND)' })
    .option('focus-probe-share', { type: 'string', default: env.PROBE_FOCUS_SHARE ?? String(agentFocusProbeShare), coerce: flagCoercion('focus-probe-share', ratio({ aboveZero: true })), describe: 'Share of --max-probes-per-second that probes of nodes being migrated may take, above 0 and at most 1, so that a large wave never starves the other cells (PROBE_FOCUS_SHARE)' })
    .option('jitter', { type: 'string', default: env.PROBE_JITTER ?? '0.2', coerce: flagCoercion('jitter', ratio()), describe: 'Each next probe at interval x (1 +/- jitter), 0 to 0.9 (PROBE_JITTER)' })
    .option('full-mesh-max', { type: 'string', default: env.FULL_MESH_MAX ?? String(agentFullMeshMax), coerce: flagCoercion('full-mesh-max', positiveInt(100_000)), describe: 'Probe every peer up to this many (FULL_MESH_MAX)' })
    .option('ring-size', { type: 'string', default: env.RING_SIZE ?? '5', coerce: flagCoercion('ring-size', positiveInt(1000)), describe: 'Above that, peers per destination overlay (RING_SIZE)' })
    .option('protocols', { type: 'string', default: env.PROBE_PROTOCOLS ?? 'icmp,http', coerce: flagCoercion('protocols', probeProtocols), describe: 'Probes to send, comma-separated: icmp (the system ping), http (/v1/ping of the peer) (PROBE_PROTOCOLS)' })
    .option('large-packet-size', { type: 'string', default: env.LARGE_PACKET_SIZE ?? '0', coerce: flagCoercion('large-packet-size', positiveInt(65_000)), describe: 'ICMP payload bytes of the DF large-packet probe, 0-65000; 0 turns it off (LARGE_PACKET_SIZE)' })
    .option('peers-file', { type: 'string', default: env.PEERS_FILE, describe: 'Read the cluster view from this JSON file instead of the Kubernetes API (PEERS_FILE)' })
    .option('kubeconfig', { type: 'string', default: env.KUBECONFIG, describe: 'Kubeconfig; in a pod the service account is used (KUBECONFIG)' })
    .option('agent-selector', { type: 'string', default: env.AGENT_SELECTOR ?? agentSelector, coerce: flagCoercion('agent-selector', labelSelector), describe: 'Label selector of the agent pods (AGENT_SELECTOR)' })
    .option('label-key', { type: 'string', default: env.MIGRATION_LABEL ?? migrationLabel, coerce: flagCoercion('label-key', labelKey), describe: 'The label that moves a node to Cilium (MIGRATION_LABEL)' })
    .option('max-failing-series', { type: 'string', default: env.MAX_FAILING_SERIES ?? '50', coerce: flagCoercion('max-failing-series', positiveInt(100_000)), describe: 'Cap on per-peer metric series (MAX_FAILING_SERIES)' })
    .version(version)
    .help()
    .strict()
    .exitProcess(false)
    .fail((msg, err) => {
      if (err && err.name === 'YError') throw new UsageError(err.message);
      if (err) throw err;
      throw new UsageError(`${msg ?? 'invalid arguments'} (see cilium-migrate-agent --help)`);
    });
  // yargs prints help and the version and goes on parsing; the agent has nothing else to do then.
  parser.middleware((a) => {
    if (a.help || a.version) shown = true;
  }, true);
  const args = await parser.parseAsync();
  if (shown || argv.includes('--help') || argv.includes('--version')) return { kind: 'shown' };

  const need = <T>(value: T | undefined, flag: string, variable: string): T => {
    if (value === undefined || value === '') throw new UsageError(`--${flag} is required (or ${variable}); in the DaemonSet, set it from the downward API`);
    return value;
  };
  const ip = need(args['pod-ip'], 'pod-ip', 'POD_IP');
  if (!ipaddr.isValid(ip)) throw badValue('--pod-ip', ip, 'an IP address');
  const legacyCidrs = args['legacy-cidrs'];
  const ciliumCidrs = args['cilium-cidrs'];
  for (const c of ciliumCidrs) for (const l of legacyCidrs) refuseOverlap('--cilium-cidrs', c, '--legacy-cidrs', l);
  const cfg: AgentConfig = {
    port: args.port,
    node: need(args['node-name'], 'node-name', 'NODE_NAME'),
    pod: need(args['pod-name'], 'pod-name', 'POD_NAME'),
    namespace: args['pod-namespace'],
    ip,
    legacyCidrs,
    ciliumCidrs,
    intervalMs: args.interval,
    focusIntervalMs: args['focus-interval'] ?? 0,
    timeoutMs: args.timeout,
    windowMs: args.window,
    maxPerSecond: args['max-probes-per-second'],
    focusShare: args['focus-probe-share'],
    jitter: args.jitter,
    fullMeshMax: args['full-mesh-max'],
    ringSize: args['ring-size'],
    largePacketSize: args['large-packet-size'],
    protocols: [...args.protocols],
    peersFile: args['peers-file'],
    kubeconfig: args.kubeconfig,
    agentSelector: args['agent-selector'],
    labelKey: args['label-key'],
    maxFailingSeries: args['max-failing-series'],
  };
  if (cfg.jitter > 0.9) throw badValue('--jitter', String(args.jitter), 'a number from 0 to 0.9');
  if (cfg.timeoutMs >= cfg.intervalMs) throw new UsageError(`--timeout (${unit(cfg.timeoutMs)}) must be shorter than --interval (${unit(cfg.intervalMs)})`);
  if (cfg.focusIntervalMs && cfg.focusIntervalMs <= cfg.timeoutMs) throw new UsageError(`--focus-interval (${unit(cfg.focusIntervalMs)}) must be longer than --timeout (${unit(cfg.timeoutMs)})`);
  // Never slower than the interval: a focus interval above it is capped.
  cfg.focusIntervalMs = Math.min(cfg.intervalMs, cfg.focusIntervalMs || Math.max(2000, 2 * cfg.timeoutMs));
  if (cfg.windowMs < cfg.intervalMs) throw new UsageError('--window must be at least one --interval');
  if (cfg.largePacketSize > 0) cfg.protocols.push('icmp-large');
  return { kind: 'run', config: cfg };
}

const unit = (ms: number) => (ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`);

/** The configuration, for callers that never pass --help or --version (tests, benchmarks). */
export async function parseAgentConfig(argv: string[], env: NodeJS.ProcessEnv): Promise<AgentConfig> {
  const r = await parseAgentCommandLine(argv, env);
  if (r.kind !== 'run') throw new UsageError('--help and --version print and exit; no configuration to run with');
  return r.config;
}

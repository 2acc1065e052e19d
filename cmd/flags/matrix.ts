// The flags that say where the agents are and how the matrix is judged, shared by `connectivity`
// and the node engine's matrix gate. Each is parsed (and refused when malformed) by lib/flag-values.
import { agentNamespace, agentPodSelector, agentPort, defaultConnectivity, limits, migrationLabel } from '../../lib/defaults.js';
import { duration, flagCoercion, integer, labelSelector, namespace, port, ratio } from '../../lib/flag-values.js';
import { kubeRowSource, type MatrixSettings } from '../matrix/read.js';

export const matrixFlags = {
  'agent-namespace': { type: 'string', default: agentNamespace, coerce: flagCoercion('agent-namespace', namespace), describe: 'Namespace of the probe agent pods' },
  'agent-selector': { type: 'string', default: agentPodSelector, coerce: flagCoercion('agent-selector', labelSelector), describe: 'Label selector of the probe agent pods' },
  'agent-port': { type: 'string', default: String(agentPort), coerce: flagCoercion('agent-port', port), describe: 'Port of the agents\' /v1/row, reached through the API server\'s pod proxy (1-65535)' },
  'min-samples': { type: 'string', default: String(defaultConnectivity.minSamples), coerce: flagCoercion('min-samples', integer(1, limits.minSamples)), describe: `Samples since the step started each cell of a focus node needs (M, 1-${limits.minSamples})` },
  'success-threshold': { type: 'string', default: String(defaultConnectivity.successThreshold), coerce: flagCoercion('success-threshold', ratio({ aboveZero: true })), describe: 'Share of probes (above 0, at most 1) that must succeed, per cell and protocol' },
  'concurrency': { type: 'string', default: String(defaultConnectivity.concurrency), coerce: flagCoercion('concurrency', integer(1, limits.concurrency)), describe: `Agent rows read at once (1-${limits.concurrency})` },
  'request-timeout': { type: 'string', default: `${defaultConnectivity.requestTimeoutSeconds}s`, coerce: flagCoercion('request-timeout', duration(100, 5 * 60_000)), describe: 'Give up on one agent\'s row after this long, 100ms to 5m (its cells become UNKNOWN)' },
} as const;

/** The matrix flags, parsed. */
export interface MatrixArgs {
  'agent-namespace': string;
  'agent-selector': string;
  'agent-port': number;
  'min-samples': number;
  'success-threshold': number;
  concurrency: number;
  /** Milliseconds. */
  'request-timeout': number;
}


/** What the (already parsed) flags mean for reading and judging the matrix. */
export function matrixSettings(args: MatrixArgs): MatrixSettings {
  return {
    policy: { minSamples: args['min-samples'], successThreshold: args['success-threshold'] },
    concurrency: args.concurrency,
    timeoutMs: args['request-timeout'],
    source: (kube, labelKey) => kubeRowSource(kube, { namespace: args['agent-namespace'], selector: args['agent-selector'], port: args['agent-port'], labelKey: labelKey || migrationLabel, concurrency: args.concurrency }),
  };
}

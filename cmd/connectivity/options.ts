// The flags that say where the agents are and how the matrix is judged, shared by `connectivity`
// and the node engine's matrix gate.
import { agentNamespace, agentPodSelector, agentPort, defaultConnectivity, migrationLabel } from '../../lib/defaults.js';
import { parseDuration } from '../../lib/duration.js';
import { UsageError } from '../../lib/errors.js';
import type { GatePolicy } from '../../lib/connectivity-gate.js';
import type { Kube } from '../../lib/kube.js';
import { kubeRowSource, type RowSource } from './read-matrix.js';

export const matrixFlags = {
  'agent-namespace': { type: 'string', default: agentNamespace, describe: 'Namespace of the probe agent pods' },
  'agent-selector': { type: 'string', default: agentPodSelector, describe: 'Label selector of the probe agent pods' },
  'agent-port': { type: 'number', default: agentPort, describe: 'Port of the agents\' /v1/row, reached through the API server\'s pod proxy' },
  'min-samples': { type: 'number', default: defaultConnectivity.minSamples, describe: 'Samples since the step started each cell of a focus node needs (M)' },
  'success-threshold': { type: 'number', default: defaultConnectivity.successThreshold, describe: 'Share of probes (0-1) that must succeed, per cell and protocol' },
  'concurrency': { type: 'number', default: defaultConnectivity.concurrency, describe: 'Agent rows read at once' },
  'request-timeout': { type: 'string', default: `${defaultConnectivity.requestTimeoutSeconds}s`, describe: 'Give up on one agent\'s row after this long (its cells become UNKNOWN)' },
} as const;

export interface MatrixArgs {
  'agent-namespace': string;
  'agent-selector': string;
  'agent-port': number;
  'min-samples': number;
  'success-threshold': number;
  concurrency: number;
  'request-timeout': string;
}

export interface MatrixSettings {
  policy: GatePolicy;
  concurrency: number;
  timeoutMs: number;
  source: (kube: Kube, labelKey: string) => RowSource & { close(): void };
}

export const durationFlag = (flag: string, value: string): number => {
  try {
    return parseDuration(value);
  } catch (err) {
    throw new UsageError(`--${flag}: ${(err as Error).message}`);
  }
};

/** Validates the flags. */
export function matrixSettings(args: MatrixArgs): MatrixSettings {
  if (!Number.isInteger(args['min-samples']) || args['min-samples'] < 1) throw new UsageError('--min-samples must be a whole number of at least 1');
  if (!(args['success-threshold'] > 0 && args['success-threshold'] <= 1)) throw new UsageError('--success-threshold must be above 0 and at most 1 (0.95 means 95%)');
  if (!Number.isInteger(args.concurrency) || args.concurrency < 1) throw new UsageError('--concurrency must be a whole number of at least 1');
  if (!Number.isInteger(args['agent-port']) || args['agent-port'] < 1 || args['agent-port'] > 65535) throw new UsageError('--agent-port must be a port number');
  const timeoutMs = durationFlag('request-timeout', args['request-timeout']);
  if (timeoutMs <= 0) throw new UsageError('--request-timeout must be positive');
  return {
    policy: { minSamples: args['min-samples'], successThreshold: args['success-threshold'] },
    concurrency: args.concurrency,
    timeoutMs,
    source: (kube, labelKey) => kubeRowSource(kube, { namespace: args['agent-namespace'], selector: args['agent-selector'], port: args['agent-port'], labelKey: labelKey || migrationLabel, concurrency: args.concurrency }),
  };
}

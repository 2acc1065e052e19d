// `preflight`: read-only checks before a migration; the exit code is the worst result.
import { agentNamespace, ciliumClusterCidr, ciliumNamespace } from '../lib/defaults.js';
import { cidr, flagCoercion, namespace, podCidrLimits, serviceCidrLimits } from '../lib/flag-values.js';
import { PreconditionError } from '../lib/errors.js';
import { defineCommand } from './context.js';
import { gatherFacts, preflightChecks, worst, type Check } from './migration/preflight.js';
import { render } from './output.js';
import { table } from './table.js';

function human(checks: Check[]): string {
  const rows = checks.map((c) => [c.result.toUpperCase(), c.name, c.detail + (c.fix ? `\n  fix: ${c.fix}` : '')]);
  return `${table(['RESULT', 'CHECK', 'DETAIL'], rows)}\n`;
}

export const preflightCommand = defineCommand({
  command: 'preflight',
  describe: 'Check, without changing anything, that the cluster is ready for a live migration to Cilium',
  builder: (y) =>
    y
      .option('agent-namespace', { type: 'string', default: agentNamespace, coerce: flagCoercion('agent-namespace', namespace), describe: 'Namespace of the probe agents' })
      .option('cilium-namespace', { type: 'string', default: ciliumNamespace, coerce: flagCoercion('cilium-namespace', namespace), describe: 'Namespace of Cilium (its Helm release): cilium-config, the cilium DaemonSet, the CiliumNodeConfig, the lock' })
      .option('verify-namespace', { type: 'string', default: 'default', coerce: flagCoercion('verify-namespace', namespace), describe: 'Namespace of the verify pods (node/run --verify-namespace), for the permission check' })
      .option('service-cidr', { type: 'string', default: '10.96.0.0/12', coerce: flagCoercion('service-cidr', cidr(serviceCidrLimits)), describe: 'The cluster\'s service CIDR (the API does not publish it)' })
      .option('cilium-cidr', { type: 'string', default: ciliumClusterCidr, coerce: flagCoercion('cilium-cidr', cidr(podCidrLimits)), describe: 'Cilium\'s pod CIDR, when cilium-config does not name one yet' }),
  run: async (ctx, args) => {
    const facts = await gatherFacts(ctx.kube(), { agentNamespace: args['agent-namespace'], ciliumNamespace: args['cilium-namespace'], verifyNamespace: args['verify-namespace'], serviceCidr: args['service-cidr'], ciliumCidr: args['cilium-cidr'] });
    const checks = preflightChecks(facts);
    ctx.io.out(render(checks, ctx.options.output, human));
    const failed = checks.filter((c) => c.result === 'fail');
    if (worst(checks) === 'fail') throw new PreconditionError(`preflight: ${failed.length} check${failed.length === 1 ? '' : 's'} failed: ${failed.map((c) => c.name).join(', ')}`, 'fix what the table says, then run preflight again');
  },
});

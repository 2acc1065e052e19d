// `values`: Cilium's Helm values for the migration (initial) or after the last node (final).
import { writeFile } from 'node:fs/promises';
import { parse } from 'yaml';
import { ciliumClusterCidr, ciliumVxlanPort, legacyClusterCidr, legacyVxlanPort } from '../lib/defaults.js';
import { cidr, ciliumVersion, flagCoercion, lastOccurrence, podCidrLimits, port, portOrNone, refuseOverlap } from '../lib/flag-values.js';
import { ConfigError } from '../lib/errors.js';
import { defineCommand } from './context.js';
import { valuesYaml, type ValuesPhase } from './migration/helm-values.js';

export const valuesCommand = defineCommand({
  command: 'values',
  describe: 'Print the Cilium Helm values for the migration (--phase initial) or for after it (--phase final)',
  builder: (y) =>
    y
      .option('phase', { choices: ['initial', 'final'] as const, demandOption: true, coerce: lastOccurrence<'initial' | 'final'>, describe: 'initial: install Cilium next to the legacy CNI; final: after the last node' })
      .option('cilium-version', { type: 'string', demandOption: true, coerce: flagCoercion('cilium-version', ciliumVersion), describe: 'Target Cilium version (key names differ between versions), e.g. 1.16.3' })
      .option('cilium-cidr', { type: 'string', default: ciliumClusterCidr, coerce: flagCoercion('cilium-cidr', cidr(podCidrLimits)), describe: 'Cilium\'s cluster-pool pod CIDR, distinct from the legacy one' })
      .option('legacy-cidr', { type: 'string', default: legacyClusterCidr, coerce: flagCoercion('legacy-cidr', cidr(podCidrLimits)), describe: 'The legacy CNI\'s pod CIDR, which --cilium-cidr must not overlap (Flannel\'s default; k3s uses 10.42.0.0/16, Calico often 192.168.0.0/16)' })
      .option('tunnel-port', { type: 'string', default: String(ciliumVxlanPort), coerce: flagCoercion('tunnel-port', port), describe: 'Cilium\'s VXLAN port (1-65535), distinct from the legacy CNI\'s' })
      .option('legacy-tunnel-port', { type: 'string', default: String(legacyVxlanPort), coerce: flagCoercion('legacy-tunnel-port', portOrNone), describe: 'The legacy CNI\'s UDP tunnel port (Flannel VXLAN: 8472, Calico VXLAN: 4789; 0 when it has none: Calico IP-in-IP, AWS-CNI)' })
      .option('file', { alias: 'f', type: 'string', describe: 'Write the values to this file instead of stdout' })
      .example('$0 values --phase initial --cilium-version 1.16.3 -f values-initial.yaml', 'the seed\'s values-initial.yaml'),
  run: async (ctx, args) => {
    refuseOverlap('--cilium-cidr', args['cilium-cidr'], '--legacy-cidr', args['legacy-cidr']);
    const text = valuesYaml({
      phase: args.phase as ValuesPhase,
      ciliumVersion: args['cilium-version'],
      ciliumCidr: args['cilium-cidr'],
      tunnelPort: args['tunnel-port'],
      legacyTunnelPort: args['legacy-tunnel-port'],
    });
    const out = ctx.options.output === 'json' ? JSON.stringify(parse(text), null, 2) + '\n' : text;
    if (args.file) {
      try {
        await writeFile(args.file, out);
      } catch (err) {
        throw new ConfigError(`cannot write ${args.file}: ${(err as Error).message}`);
      }
      ctx.io.err(`wrote ${args.file}\n`);
    } else ctx.io.out(out);
  },
});

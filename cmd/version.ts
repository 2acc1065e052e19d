// `version`: the plugin's version and, unless --client, the server's.
import { serverVersion } from '../lib/kube.js';
import { version } from '../lib/version.js';
import { defineCommand, type CommandContext } from './context.js';
import { render } from './output.js';

export interface VersionReport {
  clientVersion: string;
  serverVersion?: string;
  server?: string;
}

/** Collects the versions; the server is asked only without --client. */
export async function versionReport(ctx: CommandContext, clientOnly: boolean): Promise<VersionReport> {
  if (clientOnly) return { clientVersion: version };
  const kube = ctx.kube();
  const info = await serverVersion(kube);
  return { clientVersion: version, serverVersion: info.gitVersion, server: kube.server };
}

export const versionCommand = defineCommand({
  command: 'version',
  describe: 'Print the plugin version and the Kubernetes server version',
  builder: (y) => y.option('client', { type: 'boolean', default: false, describe: 'Only the plugin version; do not contact the cluster' }),
  run: async (ctx, args) => {
    const report = await versionReport(ctx, args.client);
    ctx.io.out(
      render(report, ctx.options.output, (r) =>
        `Client Version: ${r.clientVersion}\n` + (r.serverVersion ? `Server Version: ${r.serverVersion} (${r.server})\n` : ''),
      ),
    );
  },
});

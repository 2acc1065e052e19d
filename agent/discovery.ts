// What the agent knows of the cluster: the other agents, the nodes (addresses, migration label and
// phase) and the CiliumNodes' pod CIDRs. From the Kubernetes API by watch, or from a file (for
// environments without an API server, like the data-plane tests).
import { readFile } from 'node:fs/promises';
import { watchFile, unwatchFile } from 'node:fs';

export interface AgentEndpoint {
  node: string;
  pod: string;
  ip: string;
}

export interface NodeInfo {
  name: string;
  addresses: string[];
  labels: Record<string, string>;
  /** The plugin's cilium-migrate.io/phase annotation, if any. */
  phase?: string | undefined;
}

export interface ClusterView {
  agents: AgentEndpoint[];
  nodes: NodeInfo[];
  /** CiliumNode name -> spec.ipam.podCIDRs. */
  ciliumNodeCidrs: Record<string, string[]>;
}

export interface Discovery {
  /** Calls `onChange` with the whole view after the first sync and after every change. */
  start(onChange: (view: ClusterView) => void): void;
  stop(): void;
}

/** Reads the view from a JSON file, and again whenever the file changes. */
export function fileDiscovery(path: string, onError: (err: Error) => void): Discovery {
  let listener: (() => void) | undefined;
  return {
    start(onChange) {
      const load = async () => {
        try {
          const view = JSON.parse(await readFile(path, 'utf8')) as Partial<ClusterView>;
          onChange({ agents: view.agents ?? [], nodes: view.nodes ?? [], ciliumNodeCidrs: view.ciliumNodeCidrs ?? {} });
        } catch (err) {
          // Keep the last good view: probing goes on with the peers we knew.
          onError(new Error(`peers file ${path}: ${(err as Error).message}`));
        }
      };
      listener = () => void load();
      watchFile(path, { interval: 500 }, listener);
      void load();
    },
    stop() {
      if (listener) unwatchFile(path, listener);
    },
  };
}

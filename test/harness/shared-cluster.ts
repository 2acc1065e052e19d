// One control plane with the seed's three kind-named nodes and the Cilium CRDs, started on first
// use and shared by every integration test file in the run (test/integration.ts stops it).
import { createSimulatedNodes, installCiliumCrds, kindNodes } from '../../lab/cluster-objects.js';
import { startControlPlane, type ControlPlane } from '../../lab/control-plane.js';

let shared: Promise<ControlPlane> | undefined;
const t0 = Date.now();

/** Progress lines on stderr, so a slow start shows where it is. */
export function progress(line: string): void {
  process.stderr.write(`[harness +${((Date.now() - t0) / 1000).toFixed(1)}s] ${line}\n`);
}

/** The shared control plane: kind-control-plane, kind-worker, kind-worker2 Ready, CRDs installed. */
export function sharedControlPlane(): Promise<ControlPlane> {
  shared ??= (async () => {
    const cp = await startControlPlane({ progress });
    try {
      await installCiliumCrds(cp);
      await createSimulatedNodes(cp, kindNodes(2));
      progress('nodes kind-control-plane, kind-worker, kind-worker2 Ready; Cilium CRDs installed');
      return cp;
    } catch (err) {
      await cp.stop();
      throw err;
    }
  })();
  return shared;
}

/** Stops the shared control plane if one was started. */
export async function stopSharedControlPlane(): Promise<void> {
  if (!shared) return;
  const cp = await shared.catch(() => undefined);
  shared = undefined;
  await cp?.stop();
}

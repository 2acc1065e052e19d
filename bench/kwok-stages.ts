// kwok Stages for benchmarks that need time to pass where kwok's fast stages make everything
// instant: pods that take their grace period to stop (kwok-stages/pod-delete.yaml), pods that take
// a while to become Ready, and node restarts that take a minute (kwok-stages/node-restart.yaml).
// kwok's own stages come from its module (lab/bins/build.sh copies them); the delayed pod-ready is
// derived from kwok's at run time rather than copied into the repository.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { kwokStageFiles } from '../lab/control-plane.js';

const labStages = join(import.meta.dirname, '..', 'lab', 'kwok-stages');

/** The annotation that delays a pod's Ready (a Go duration, e.g. "20s"). */
export const readyAfterAnnotation = 'bench.cilium-migrate.io/ready-after';
/** The annotations node-restart.yaml reacts to. */
export const restartBootIdAnnotation = 'bench.cilium-migrate.io/restart-boot-id';
export const restartDurationAnnotation = 'bench.cilium-migrate.io/restart-duration';

const here = join(import.meta.dirname, 'kwok-stages');

/**
 * Stage files: kwok's node stages and pod-complete, kwok's pod-ready with the ready-after delay,
 * the lab's own stages (pod-ready-again: without it a pod the node lifecycle controller marked not
 * Ready while kwok's heartbeats lagged under load stays so, and a 1,000-node set-up waits for it
 * forever), the graceful pod-delete, and with `nodeRestart` the slow node restart. Derived files go
 * to `dir`.
 */
export function benchKwokStages(binDir: string, dir: string, opts: { nodeRestart?: boolean } = {}): string[] {
  const kwok = kwokStageFiles(binDir);
  const ready = kwok.find((f) => basename(f) === 'pod-ready.yaml');
  if (!ready) throw new Error(`kwok's pod-ready stage is not in ${binDir}/kwok-stages (rebuild with make bins)`);
  const text = readFileSync(ready, 'utf8');
  const delayed = text.replace(/\n  next:\n/, `\n  delay:\n    durationMilliseconds: 0\n    durationFrom:\n      expressionFrom: '.metadata.annotations["${readyAfterAnnotation}"]'\n  next:\n`);
  if (delayed === text) throw new Error(`kwok's pod-ready stage (${ready}) has no "next:" to put a delay before; its format changed`);
  mkdirSync(dir, { recursive: true });
  const derived = join(dir, 'pod-ready-delayed.yaml');
  writeFileSync(derived, delayed);
  return [
    ...kwok.filter((f) => (basename(f).startsWith('node-') || basename(f) === 'pod-complete.yaml') && !f.startsWith(labStages)),
    derived,
    ...kwok.filter((f) => f.startsWith(labStages)),
    join(here, 'pod-delete.yaml'),
    ...(opts.nodeRestart ? [join(here, 'node-restart.yaml')] : []),
  ];
}

// BENCHMARKS.md is made of sections, one per benchmark; each benchmark rewrites only its own. Every
// section names its command and the machine, with the load average when it started and ended: the
// machine is shared, and a figure taken under load says so.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, hostname, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';

const file = join(import.meta.dirname, '..', 'BENCHMARKS.md');
const header = `# Benchmarks

Every figure here comes from a run of the command named in its section on the machine it names;
\`make bench\` runs the benchmarks of a small cluster, \`make bench-scale\` those of 1,000 simulated
nodes. Each section says what its numbers include and what they do not cover, and where a target is
missed, why. The load average in a section is the machine's when the run started and ended: other
work shared these cores, so a high one means the figures are pessimistic.
`;

/** Replaces (or appends) the section titled `title` with `body`, stamped with the date. */
export function updateSection(title: string, body: string): void {
  const current = existsSync(file) ? readFileSync(file, 'utf8') : header;
  const start = `<!-- section: ${title} -->`;
  const end = `<!-- end: ${title} -->`;
  const section = `${start}\n## ${title}\n\nRun on ${new Date().toISOString().slice(0, 10)}.\n\n${body}\n${end}`;
  const i = current.indexOf(start);
  const j = current.indexOf(end);
  const next = i >= 0 && j > i ? current.slice(0, i) + section + current.slice(j + end.length) : `${current.trimEnd()}\n\n${section}\n`;
  writeFileSync(file, next);
}

/** The 1, 5 and 15 minute load averages. */
export function loadAverage(): string {
  return loadavg().map((l) => l.toFixed(2)).join(', ');
}

/** Started when a benchmark starts: `machine()` then names the machine and the load at both ends. */
export function benchRun() {
  const loadAtStart = loadAverage();
  return {
    /** One line: cores, memory, Node, and the load average at the start and now. */
    machine(extra = ''): string {
      return `Machine: ${cpus().length} x ${cpus()[0]?.model.trim() ?? 'CPU'} (${hostname()}), ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}${extra ? `; ${extra}` : ''}. Load average (1, 5, 15 min) at the start ${loadAtStart}, at the end ${loadAverage()}.`;
    },
  };
}

/** min, median and max of `xs`, formatted with `digits`: "median (min-max)". */
export function spread(xs: number[], digits = 1): string {
  if (xs.length === 0) return '-';
  const s = [...xs].sort((a, b) => a - b);
  return `${median(s).toFixed(digits)} (${s[0]!.toFixed(digits)}-${s.at(-1)!.toFixed(digits)})`;
}

/** The median of `xs`. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

/** The versions of the control plane the benchmarks run (lab/bins). */
export const controlPlaneVersions = 'kube-apiserver, kube-controller-manager, kube-scheduler and kubectl v1.36.5, etcd v3.6.16, kwok v0.8.0, built from their Go modules (lab/bins)';

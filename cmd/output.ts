// Renders a command's result in the format -o asked for.
import { stringify } from 'yaml';
import type { OutputFormat } from './context.js';

/** Machine formats print the data; table and wide print what `human` makes of it. */
export function render<T>(data: T, format: OutputFormat, human: (data: T, wide: boolean) => string): string {
  switch (format) {
    case 'json':
      return JSON.stringify(data, null, 2) + '\n';
    case 'yaml':
      return stringify(data);
    case 'wide':
      return human(data, true);
    case 'table':
      return human(data, false);
  }
}

/** The steps of each procedure a run did (or, in a dry run, would do), one line a step. */
export function stepTable(results: { node: string; result: string; steps: { step: string; outcome: string; message: string }[] }[]): string {
  const heading: Record<string, string> = { 'dry-run': 'dry run, nothing changed', 'rolled-back': 'rolled back to the legacy CNI' };
  const lines: string[] = [];
  for (const r of results) {
    lines.push(`${r.node}: ${heading[r.result] ?? r.result}`);
    const width = Math.max(...r.steps.map((s) => s.step.length));
    for (const s of r.steps) lines.push(`  ${s.step.padEnd(width)}  ${s.outcome.padEnd(11)}  ${s.message}`);
  }
  return lines.length ? lines.join('\n') + '\n' : '';
}

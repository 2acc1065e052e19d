// BENCHMARKS.md is made of sections, one per benchmark; each benchmark rewrites only its own.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const file = join(import.meta.dirname, '..', 'BENCHMARKS.md');
const header = `# Benchmarks

Every figure here comes from a run of the command named in its section (\`make bench\` runs them
all) on the machine it names. Where a target is missed, the section says so.
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

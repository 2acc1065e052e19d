// The structure the imports must keep: lib/, agent/ and lab/ never import the plugin's cmd/ (what
// they share with it lives in lib/), no module imports itself through others (no circle of files),
// the plugin's folders import each other one way only (no circle of folders, such as
// cmd/connectivity and cmd/engine), and only lib/kube*.ts imports @kubernetes/client-node.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const sourceDirs = ['cmd', 'lib', 'agent', 'lab', 'bench', 'monitoring'];

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(join(root, dir))) {
    const path = join(dir, entry);
    if (statSync(join(root, path)).isDirectory()) out.push(...sources(path));
    else if (path.endsWith('.ts')) out.push(path);
  }
  return out;
}

/** Every module `file` names in an import or export (static, dynamic or bare): relative ones as repository paths, packages as they are written. */
export function importsOf(text: string, file: string): string[] {
  const specifiers = [...text.matchAll(/^\s*(?:import|export)\b[^'"`;]*?\bfrom\s*['"]([^'"]+)['"]|^\s*import\s*['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)/gm)].map((m) => (m[1] ?? m[2] ?? m[3])!);
  return specifiers.map((s) => (s.startsWith('.') ? relative(root, resolve(root, dirname(file), s)).replace(/\.js$/, '.ts') : s));
}

/** The group a file belongs to for the folder rule: each folder under cmd/ is one, each file right in cmd/ its own, and each other top-level folder one. */
const groupOf = (file: string) => {
  const parts = file.split('/');
  if (parts[0] === 'cmd') return parts.length > 2 ? `cmd/${parts[1]}/` : file;
  return `${parts[0]}/`;
};

/** A circle in `graph`, as the path around it, or undefined when there is none. */
export function findCircle(graph: Map<string, Set<string>>): string[] | undefined {
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (node: string): string[] | undefined => {
    if (state.get(node) === 'done') return undefined;
    if (state.get(node) === 'open') return [...path.slice(path.indexOf(node)), node];
    state.set(node, 'open');
    path.push(node);
    for (const next of graph.get(node) ?? []) {
      const circle = visit(next);
      if (circle) return circle;
    }
    path.pop();
    state.set(node, 'done');
    return undefined;
  };
  for (const node of [...graph.keys()].sort()) {
    const circle = visit(node);
    if (circle) return circle;
  }
  return undefined;
}

const files = sourceDirs.flatMap(sources).sort();
const imports = new Map(files.map((f) => [f, importsOf(readFileSync(join(root, f), 'utf8'), f)]));
const local = (f: string) => (imports.get(f) ?? []).filter((i) => files.includes(i));

describe('import rules', () => {
  it('reads every import form it needs to (the parser itself)', () => {
    const text = "import a from './a.js';\nimport type { B } from '../b/b.js';\nexport { c } from './c.js';\nimport './d.js';\nconst e = await import('./e.js');\nimport {\n  f,\n} from 'pkg';\n";
    assert.deepEqual(importsOf(text, 'cmd/x/y.ts'), ['cmd/x/a.ts', 'cmd/b/b.ts', 'cmd/x/c.ts', 'cmd/x/d.ts', 'cmd/x/e.ts', 'pkg']);
  });

  it('finds a circle, and none where there is none', () => {
    assert.deepEqual(findCircle(new Map([['a', new Set(['b'])], ['b', new Set(['c'])], ['c', new Set(['a'])]])), ['a', 'b', 'c', 'a']);
    assert.equal(findCircle(new Map([['a', new Set(['b', 'c'])], ['b', new Set(['c'])], ['c', new Set()]])), undefined);
  });

  it('sees the whole tree', () => {
    assert.ok(files.length > 100, `${files.length} files`);
    assert.ok(files.includes('cmd/engine/runner.ts') && files.includes('lib/node-state.ts'));
  });

  it('no file under cmd/ is imported by lib/, agent/ or lab/', () => {
    const offending = files.filter((f) => /^(lib|agent|lab)\//.test(f)).flatMap((f) => local(f).filter((i) => i.startsWith('cmd/')).map((i) => `${f} -> ${i}`));
    assert.deepEqual(offending, []);
  });

  it('no circle of files', () => {
    assert.equal(findCircle(new Map(files.map((f) => [f, new Set(local(f))]))), undefined);
  });

  it('no circle of folders (the plugin\'s folders import each other one way only)', () => {
    const graph = new Map<string, Set<string>>();
    for (const f of files) {
      for (const i of local(f)) {
        if (groupOf(f) === groupOf(i)) continue;
        if (!graph.has(groupOf(f))) graph.set(groupOf(f), new Set());
        graph.get(groupOf(f))!.add(groupOf(i));
      }
    }
    assert.equal(findCircle(graph), undefined);
  });

  it('only lib/kube*.ts imports @kubernetes/client-node', () => {
    assert.deepEqual(files.filter((f) => (imports.get(f) ?? []).some((i) => i.startsWith('@kubernetes/client-node')) && !/^lib\/kube[^/]*\.ts$/.test(f)), []);
  });
});

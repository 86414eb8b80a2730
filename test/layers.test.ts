// The folders of src/ form layers: no folder may import, directly or through others, from a folder
// that imports it. A cycle means two folders can only be understood, tested and changed together.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';

const SRC = path.resolve(__dirname, '..', '..', 'src');

/** The folder of src/ a file belongs to; a file directly in src/ (index.ts, errors.ts) is its own unit. */
function unitOf(file: string): string {
  const rel = path.relative(SRC, file).split(path.sep);
  return rel.length > 1 ? rel[0] : rel[0].replace(/\.ts$/, '');
}

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? sourceFiles(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

/** unit → unit → the files that make the edge. */
export function importGraph(files: string[], unit: (f: string) => string): Map<string, Map<string, Set<string>>> {
  const graph = new Map<string, Map<string, Set<string>>>();
  for (const file of files) {
    const from = unit(file);
    const text = fs.readFileSync(file, 'utf8');
    for (const m of text.matchAll(/^(?:import|export)\s[^;]*?from\s+'(\.[^']+)'/gm)) {
      const to = unit(path.resolve(path.dirname(file), m[1]) + '.ts');
      if (to === from) continue;
      const edges = graph.get(from) ?? new Map<string, Set<string>>();
      graph.set(from, edges);
      const by = edges.get(to) ?? new Set<string>();
      edges.set(to, by);
      by.add(path.relative(SRC, file));
    }
  }
  return graph;
}

/** Strongly connected components with more than one unit (Tarjan). */
export function cycles(graph: Map<string, Map<string, Set<string>>>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, index.size);
    low.set(v, index.get(v)!);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v)?.keys() ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1) found.push(component.sort());
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return found;
}

test('the cycle finder finds a cycle through three units and none in a chain', () => {
  const g = (edges: [string, string][]) => {
    const m = new Map<string, Map<string, Set<string>>>();
    for (const [a, b] of edges) m.set(a, (m.get(a) ?? new Map()).set(b, new Set([a])));
    return m;
  };
  assert.deepEqual(cycles(g([['a', 'b'], ['b', 'c'], ['c', 'a'], ['c', 'd']])), [['a', 'b', 'c']]);
  assert.deepEqual(cycles(g([['a', 'b'], ['b', 'c'], ['a', 'c']])), []);
});

test('no import cycle between the folders of src/', () => {
  const graph = importGraph(sourceFiles(SRC), unitOf);
  assert.ok((graph.get('cli')?.size ?? 0) > 3, 'the import scan sees the CLI importing the library');
  const described = cycles(graph).map((component) => component.map((a) =>
    component.filter((b) => graph.get(a)?.has(b)).map((b) => `${a} → ${b} (${[...graph.get(a)!.get(b)!].join(', ')})`).join('; ')).join('; '));
  assert.deepEqual(described, []);
});

// The import graph of the product code, read from the sources: folders depend on each other in
// one direction only (the edge → capabilities → fan-out and routing → tunnel → protocol; otel
// used by all and using none of them), and no two folders import each other in a circle. A new
// import that breaks the layering fails here, with the file and the line.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PRODUCT = ['bin', 'server', 'agent', 'protocol', 'otel'];

/** The folder a file belongs to, as the layering names it. */
function folderOf(file: string): string {
  const parts = relative(ROOT, file).split('/');
  if (parts[0] === 'server' || parts[0] === 'agent') {
    // server/serve.ts, server/cli.ts…: the program's own root files; server/http/…: its folders.
    return parts.length > 2 ? `${parts[0]}/${parts[1]}` : `${parts[0]}/${parts[1]!.replace(/\.ts$/, '')}`;
  }
  return parts[0]!;
}

/**
 * Which folders each folder may import. Anything not listed is a layering violation. The
 * programs' composition roots (server/serve, server/cli, agent/main) may use what they wire.
 */
const ALLOWED: Record<string, string[]> = {
  protocol: [],
  otel: [],
  'server/config': ['protocol'],
  'server/lifecycle': [],
  'server/auth': ['protocol', 'server/config'],
  'server/tunnel': ['protocol', 'otel', 'server/auth'],
  'server/routing': ['protocol', 'otel', 'server/auth', 'server/tunnel', 'server/lifecycle'],
  'server/fanout': ['protocol', 'otel'],
  'server/modules': ['protocol', 'otel', 'server/routing', 'server/fanout', 'server/tunnel'],
  'server/http': ['protocol', 'otel', 'server/auth', 'server/modules', 'server/routing', 'server/lifecycle', 'server/config'],
  'server/serve': ['*'],
  'server/cli': ['*'],
  'agent/tunnel': ['protocol', 'otel'],
  // The environment of agentk's short-lived Node children (agent.yaml's check, the kubeconfig reader).
  'agent/childEnv': [],
  'agent/modules': ['protocol', 'otel', 'agent/tunnel', 'agent/childEnv'],
  'agent/agentFile': ['agent/childEnv', 'agent/modules'],
  'agent/config': ['protocol', 'agent/modules', 'agent/agentFile'],
  'agent/connection': ['protocol', 'otel', 'agent/tunnel'],
  'agent/main': ['*'],
  bin: ['*'],
};

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return path.endsWith('.ts') ? [path] : [];
  });
}

interface Edge {
  from: string;
  to: string;
  file: string;
  line: number;
}

function imports(): Edge[] {
  const edges: Edge[] = [];
  for (const file of PRODUCT.flatMap((dir) => sourceFiles(join(ROOT, dir)))) {
    const lines = readFileSync(file, 'utf8').split('\n');
    lines.forEach((text, index) => {
      for (const match of text.matchAll(/(?:from\s+|import\s*\(\s*)'(\.{1,2}\/[^']+)'/g)) {
        const target = resolve(dirname(file), match[1]!);
        const from = folderOf(file);
        const to = folderOf(target);
        if (from !== to) edges.push({ from, to, file: relative(ROOT, file), line: index + 1 });
      }
    });
  }
  return edges;
}

test('every import between folders goes the way the layering allows', () => {
  const wrong = imports().filter((e) => {
    const allowed = ALLOWED[e.from];
    return !allowed || !(allowed.includes('*') || allowed.includes(e.to));
  });
  assert.deepEqual(
    wrong.map((e) => `${e.file}:${e.line}: ${e.from} → ${e.to}`),
    [],
    'imports against the layering (see ALLOWED in this test)',
  );
});

test('no folders import each other in a circle', () => {
  const graph = new Map<string, Set<string>>();
  for (const { from, to } of imports()) {
    if (!graph.has(from)) graph.set(from, new Set());
    graph.get(from)!.add(to);
  }
  const circles: string[] = [];
  const visit = (node: string, path: string[]) => {
    for (const next of graph.get(node) ?? []) {
      if (next === path[0]) circles.push([...path, next].join(' → '));
      else if (!path.includes(next) && next > path[0]!) visit(next, [...path, next]);
    }
  };
  for (const node of graph.keys()) visit(node, [node]);
  assert.deepEqual(circles, []);
});

test('the routing, tunnel and fan-out folders name no capability', () => {
  const named: string[] = [];
  for (const dir of ['server/routing', 'server/tunnel', 'server/fanout']) {
    for (const file of sourceFiles(join(ROOT, dir))) {
      readFileSync(file, 'utf8').split('\n').forEach((text, index) => {
        // Comments may mention them as examples; code may not branch on them.
        const code = text.replace(/\/\/.*$/, '').replace(/^\s*\*.*$/, '');
        if (/['"`](?:prometheus|kubernetes)['"`]/.test(code)) named.push(`${relative(ROOT, file)}:${index + 1}: ${text.trim()}`);
      });
    }
  }
  assert.deepEqual(named, []);
});

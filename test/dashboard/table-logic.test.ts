// The live table's pure parts: which rows are in the DOM (virtualisation), the columns computed
// in the browser for well-known kinds, sorting and the filter.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { KubeObject } from '../../protocol/ui.ts';
import { formatAge } from '../../web/src/lib/age.ts';
import { cellText, columnsFor, compareBy, filterWords, matchesFilter, objectKey, podStatus } from '../../web/src/lib/kubeColumns.ts';
import { rowWindow, scrollToRow } from '../../web/src/lib/virtualWindow.ts';

const NOW = Date.parse('2026-01-01T12:00:00Z');

function pod(name: string, extra: Partial<KubeObject> = {}): KubeObject {
  return {
    metadata: { name, namespace: 'shop', uid: `uid-${name}`, creationTimestamp: '2026-01-01T11:00:00Z' },
    spec: { nodeName: 'node-1', containers: [{ name: 'app' }, { name: 'sidecar' }] },
    status: { phase: 'Running', containerStatuses: [{ name: 'app', ready: true, restartCount: 2 }, { name: 'sidecar', ready: false, restartCount: 1 }] },
    ...extra,
  };
}

describe('row virtualisation window', () => {
  test('5,000 rows: only the rows in view plus the overscan are rendered, spacers make up the rest', () => {
    const w = rowWindow({ scrollTop: 30 * 1000, viewportHeight: 600, rowHeight: 30, rowCount: 5000, overscan: 5 });
    assert.equal(w.start, 995);
    assert.equal(w.end, 1000 + 21 + 5);
    assert.equal(w.padTop, 995 * 30);
    assert.equal(w.padTop + (w.end - w.start) * 30 + w.padBottom, 5000 * 30, 'the table keeps its full height');
  });

  test('at the edges the window is clipped; an empty table renders nothing', () => {
    assert.deepEqual(rowWindow({ scrollTop: 0, viewportHeight: 300, rowHeight: 30, rowCount: 5, overscan: 8 }), { start: 0, end: 5, padTop: 0, padBottom: 0 });
    const end = rowWindow({ scrollTop: 1e9, viewportHeight: 300, rowHeight: 30, rowCount: 100, overscan: 2 });
    assert.equal(end.end, 100);
    assert.equal(end.start, 97);
    assert.deepEqual(rowWindow({ scrollTop: 0, viewportHeight: 300, rowHeight: 30, rowCount: 0 }), { start: 0, end: 0, padTop: 0, padBottom: 0 });
  });

  test('scrolling a row into view moves only as far as needed', () => {
    assert.equal(scrollToRow(10, 0, 300, 30), 30 * 11 - 300);
    assert.equal(scrollToRow(2, 300, 300, 30), 60);
    assert.equal(scrollToRow(12, 300, 300, 30), 300);
  });
});

describe('table columns computed in the browser', () => {
  test('pods: kubectl’s columns (ready, status, restarts, node, age)', () => {
    const cols = columnsFor('pods', '', true);
    assert.deepEqual(cols.map((c) => c.title), ['Name', 'Namespace', 'Ready', 'Status', 'Restarts', 'Node', 'Age']);
    assert.deepEqual(cols.map((c) => cellText(c, pod('web-0'), NOW)), ['web-0', 'shop', '1/2', 'Running', '3', 'node-1', '60m']);
  });

  test('pod status: a waiting reason wins over the phase; deletion is Terminating; init containers', () => {
    const crash = pod('c', { status: { phase: 'Running', containerStatuses: [{ name: 'app', ready: false, restartCount: 5, state: { waiting: { reason: 'CrashLoopBackOff' } } }] } });
    assert.equal(podStatus(crash), 'CrashLoopBackOff');
    assert.equal(podStatus(pod('d', { metadata: { name: 'd', deletionTimestamp: '2026-01-01T11:59:00Z' } })), 'Terminating');
    const init = pod('i', { status: { phase: 'Pending', initContainerStatuses: [{ name: 'init', state: { running: {} } }] } });
    assert.equal(podStatus(init), 'Init:0/1');
    assert.equal(podStatus({ metadata: { name: 'bare' } }), 'Unknown');
  });

  test('deployments: ready, up-to-date, available; all namespaces or one', () => {
    const dep: KubeObject = { metadata: { name: 'api', namespace: 'shop', creationTimestamp: '2025-12-25T12:00:00Z' }, spec: { replicas: 3 }, status: { readyReplicas: 2, updatedReplicas: 3, availableReplicas: 2 } };
    const cols = columnsFor('deployments', 'apps', false);
    assert.deepEqual(cols.map((c) => [c.title, cellText(c, dep, NOW)]), [['Name', 'api'], ['Ready', '2/3'], ['Up-to-date', '3'], ['Available', '2'], ['Age', '7d']]);
  });

  test('other kinds: name, namespace, age', () => {
    const cm: KubeObject = { metadata: { name: 'conf', namespace: 'a', creationTimestamp: '2026-01-01T11:59:30Z' } };
    assert.deepEqual(columnsFor('configmaps', '', true).map((c) => cellText(c, cm, NOW)), ['conf', 'a', '30s']);
    assert.deepEqual(columnsFor('widgets', 'example.com', true).map((c) => c.id), ['name', 'namespace', 'age']);
  });

  test('sorting: numbers as numbers, names naturally, ties by namespace and name; descending reverses', () => {
    const pods = [pod('web-10'), pod('web-9'), pod('web-1')];
    const name = columnsFor('pods', '', true)[0]!;
    assert.deepEqual([...pods].sort(compareBy(name, false, NOW)).map((p) => p.metadata.name), ['web-1', 'web-9', 'web-10']);
    assert.deepEqual([...pods].sort(compareBy(name, true, NOW)).map((p) => p.metadata.name), ['web-10', 'web-9', 'web-1']);
    const restarts = columnsFor('pods', '', true).find((c) => c.id === 'restarts')!;
    const many = pod('z', { status: { containerStatuses: [{ restartCount: 12 }] } });
    const few = pod('a', { status: { containerStatuses: [{ restartCount: 3 }] } });
    assert.deepEqual([many, few].sort(compareBy(restarts, false, NOW)).map((p) => p.metadata.name), ['a', 'z']);
    const age = columnsFor('pods', '', true).find((c) => c.id === 'age')!;
    const old = pod('old', { metadata: { name: 'old', creationTimestamp: '2025-01-01T00:00:00Z' } });
    assert.deepEqual([old, pod('young')].sort(compareBy(age, false, NOW)).map((p) => p.metadata.name), ['young', 'old']);
  });

  test('the filter: every word must appear in some cell, case-insensitive', () => {
    const cols = columnsFor('pods', '', true);
    const crash = pod('api-7', { status: { containerStatuses: [{ state: { waiting: { reason: 'CrashLoopBackOff' } } }] } });
    assert.equal(matchesFilter(cols, crash, filterWords('  CRASH api '), NOW), true);
    assert.equal(matchesFilter(cols, crash, filterWords('crash web'), NOW), false);
    assert.equal(matchesFilter(cols, crash, filterWords(''), NOW), true);
  });

  test('row identity is the uid, else namespace/name; ages print like kubectl', () => {
    assert.equal(objectKey(pod('x')), 'uid-x');
    assert.equal(objectKey({ metadata: { name: 'n', namespace: 'ns' } }), 'ns/n');
    assert.deepEqual([5_000, 125_000, 65 * 60_000, 5 * 3_600_000 + 60_000, 30 * 3_600_000, 3 * 86_400_000, 400 * 86_400_000, 800 * 86_400_000].map(formatAge), [
      '5s', '2m5s', '65m', '5h1m', '30h', '3d', '400d', '2y',
    ]);
  });
});

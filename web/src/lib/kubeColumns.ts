// The columns of a live Kubernetes table, computed in the browser from the objects themselves
// (the watch carries plain JSON, not the API server's Table form): kubectl's columns for the
// kinds operators look at most, name/namespace/age for everything else.
import type { KubeObject } from '../../../protocol/ui.ts';
import { ageOf, formatAge } from './age.ts';

export type CellValue = string | number;

export interface Column {
  id: string;
  title: string;
  /** The value sorted on. Ages sort on the creation time (older first when ascending by age). */
  value(obj: KubeObject, now: number): CellValue;
  /** What the cell shows; the value itself when absent. */
  text?(obj: KubeObject, now: number): string;
  numeric?: boolean;
}

type Loose = Record<string, unknown>;

function field(obj: unknown, ...path: string[]): unknown {
  let cur = obj;
  for (const p of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Loose)[p];
  }
  return cur;
}

function list(obj: unknown, ...path: string[]): Loose[] {
  const v = field(obj, ...path);
  return Array.isArray(v) ? (v as Loose[]) : [];
}

function num(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) ? v : 0;
}

const name: Column = { id: 'name', title: 'Name', value: (o) => o.metadata.name };
const namespace: Column = { id: 'namespace', title: 'Namespace', value: (o) => o.metadata.namespace ?? '' };
const age: Column = {
  id: 'age',
  title: 'Age',
  numeric: true,
  value: (o, now) => {
    const a = ageOf(o.metadata.creationTimestamp, now);
    return Number.isNaN(a) ? -1 : a;
  },
  text: (o, now) => formatAge(ageOf(o.metadata.creationTimestamp, now)),
};

/** kubectl's STATUS of a pod: a container's waiting or terminated reason wins over the phase. */
export function podStatus(pod: KubeObject): string {
  if (pod.metadata.deletionTimestamp) return 'Terminating';
  let reason = String(field(pod, 'status', 'reason') ?? field(pod, 'status', 'phase') ?? 'Unknown');
  const init = list(pod, 'status', 'initContainerStatuses');
  for (let i = 0; i < init.length; i++) {
    const waiting = field(init[i], 'state', 'waiting', 'reason');
    const terminated = field(init[i], 'state', 'terminated');
    if (terminated && num(field(terminated, 'exitCode')) === 0) continue;
    if (typeof waiting === 'string' && waiting !== 'PodInitializing') return `Init:${waiting}`;
    if (terminated) return `Init:${String(field(terminated, 'reason') ?? 'Error')}`;
    return `Init:${i}/${init.length}`;
  }
  for (const c of list(pod, 'status', 'containerStatuses')) {
    const waiting = field(c, 'state', 'waiting', 'reason');
    const terminated = field(c, 'state', 'terminated', 'reason');
    if (typeof waiting === 'string' && waiting) reason = waiting;
    else if (typeof terminated === 'string' && terminated) reason = terminated;
  }
  return reason;
}

const podColumns: Column[] = [
  name,
  namespace,
  {
    id: 'ready',
    title: 'Ready',
    value: (o) => {
      const statuses = list(o, 'status', 'containerStatuses');
      const total = Math.max(list(o, 'spec', 'containers').length, statuses.length);
      return `${statuses.filter((c) => c.ready === true).length}/${total}`;
    },
  },
  { id: 'status', title: 'Status', value: podStatus },
  {
    id: 'restarts',
    title: 'Restarts',
    numeric: true,
    value: (o) => list(o, 'status', 'containerStatuses').reduce((n, c) => n + num(c.restartCount), 0),
  },
  { id: 'node', title: 'Node', value: (o) => String(field(o, 'spec', 'nodeName') ?? '') },
  age,
];

const deploymentColumns: Column[] = [
  name,
  namespace,
  {
    id: 'ready',
    title: 'Ready',
    value: (o) => `${num(field(o, 'status', 'readyReplicas'))}/${num(field(o, 'spec', 'replicas') ?? 1)}`,
  },
  { id: 'upToDate', title: 'Up-to-date', numeric: true, value: (o) => num(field(o, 'status', 'updatedReplicas')) },
  { id: 'available', title: 'Available', numeric: true, value: (o) => num(field(o, 'status', 'availableReplicas')) },
  age,
];

const namespaceColumns: Column[] = [name, { id: 'status', title: 'Status', value: (o) => String(field(o, 'status', 'phase') ?? '') }, age];

const eventColumns: Column[] = [
  namespace,
  { id: 'type', title: 'Type', value: (o) => String(o.type ?? '') },
  { id: 'reason', title: 'Reason', value: (o) => String(o.reason ?? '') },
  {
    id: 'object',
    title: 'Object',
    value: (o) => `${String(field(o, 'involvedObject', 'kind') ?? '').toLowerCase()}/${String(field(o, 'involvedObject', 'name') ?? '')}`,
  },
  { id: 'message', title: 'Message', value: (o) => String(o.message ?? '') },
  {
    id: 'last',
    title: 'Last seen',
    numeric: true,
    value: (o, now) => {
      const a = ageOf(String(o.lastTimestamp ?? o.eventTime ?? o.metadata.creationTimestamp ?? ''), now);
      return Number.isNaN(a) ? -1 : a;
    },
    text: (o, now) => formatAge(ageOf(String(o.lastTimestamp ?? o.eventTime ?? o.metadata.creationTimestamp ?? ''), now)),
  },
];

/** Columns for a resource (its plural name and API group); `namespaced` drops the namespace column when false. */
export function columnsFor(resource: string, group: string, namespaced: boolean): Column[] {
  let columns: Column[];
  if (group === '' && resource === 'pods') columns = podColumns;
  else if (group === 'apps' && resource === 'deployments') columns = deploymentColumns;
  else if (group === '' && resource === 'namespaces') columns = namespaceColumns;
  else if ((group === '' || group === 'events.k8s.io') && resource === 'events') columns = eventColumns;
  else columns = [name, namespace, age];
  return namespaced ? columns : columns.filter((c) => c.id !== 'namespace');
}

export function cellText(column: Column, obj: KubeObject, now: number): string {
  return column.text ? column.text(obj, now) : String(column.value(obj, now));
}

const collator = new Intl.Collator(undefined, { numeric: true });

/** Sorts rows by a column; ties by namespace then name, so the order is stable as rows change. */
export function compareBy(column: Column, descending: boolean, now: number): (a: KubeObject, b: KubeObject) => number {
  const dir = descending ? -1 : 1;
  return (a, b) => {
    const va = column.value(a, now);
    const vb = column.value(b, now);
    let c = typeof va === 'number' && typeof vb === 'number' ? va - vb : collator.compare(String(va), String(vb));
    if (c === 0) c = collator.compare(a.metadata.namespace ?? '', b.metadata.namespace ?? '') || collator.compare(a.metadata.name, b.metadata.name);
    return c * dir;
  };
}

/** Whether a row matches the filter text: every word in some cell (case-insensitive). */
export function matchesFilter(columns: Column[], obj: KubeObject, words: string[], now: number): boolean {
  if (words.length === 0) return true;
  const hay = columns.map((c) => cellText(c, obj, now).toLowerCase()).join('\u0000');
  return words.every((w) => hay.includes(w));
}

export function filterWords(text: string): string[] {
  return text.toLowerCase().split(/\s+/).filter(Boolean);
}

/** A row's identity across list and watch: the uid, else namespace/name. */
export function objectKey(obj: KubeObject): string {
  return obj.metadata.uid ?? `${obj.metadata.namespace ?? ''}/${obj.metadata.name}`;
}

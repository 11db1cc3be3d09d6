/**
 * An in-process Kubernetes API server simulator, for the tests and for `npm start`'s demo cluster
 * (demo/demoCluster.ts): real clients (kubectl, client-go, @kubernetes/client-node) talk to it
 * over HTTP or HTTPS as they would to kube-apiserver.
 *
 * Faithful (checked against kubectl and @kubernetes/client-node in test/support/k8sSim.test.ts):
 * - Bearer token authentication on every path; anything else gets 401 with a Status body.
 * - Discovery: /version, /api, /apis, /apis/apps, /api/v1, /apis/apps/v1 (APIVersions,
 *   APIGroupList, APIGroup, APIResourceList with singular names, short names, categories, verbs,
 *   subresources), and the aggregated discovery (apidiscovery.k8s.io/v2 and v2beta1
 *   APIGroupDiscoveryList) that kubectl asks /api and /apis for, chosen by the Accept header
 *   and answered with the negotiated Content-Type. It can be switched off to exercise the
 *   client's fallback to the plain lists.
 * - Resources: pods, namespaces, configmaps, secrets, events (core/v1) and deployments (apps/v1);
 *   get, namespaced and cluster-wide lists, the legacy /watch/ path prefix, watch on one object.
 * - One global, monotonically increasing resourceVersion (like etcd's revision), kept in the
 *   objects, list metadata, watch events and bookmarks.
 * - Lists: JSON lists omit kind/apiVersion on items as the real server does; limit/continue with
 *   consistent snapshots (a continue token lists the state as of the first page, rebuilt from the
 *   change history, and expires with 410 Expired once history is compacted past it),
 *   remainingItemCount when no selector is used, resourceVersionMatch=Exact.
 * - Label selectors (=, ==, !=, in, notin, exists, !key, >, <) and field selectors (=, ==, !=) with
 *   per-resource supported fields; unsupported fields give 400 "field label not supported".
 * - Content negotiation: meta.k8s.io v1/v1beta1 Table (includeObject None/Metadata/Object,
 *   server-side printed columns for every resource close to kube-apiserver's), PartialObjectMetadata
 *   and PartialObjectMetadataList, plain JSON; 406 when only protobuf or unknown types are accepted.
 * - Watch: newline-delimited WatchEvents over chunked encoding, written as they happen;
 *   resourceVersion unset or "0" → synthetic ADDED events then live ones; resourceVersion N →
 *   the changes after N from history, or one ERROR event with a 410 Expired Status when N was
 *   compacted; selectors including the MODIFIED→ADDED/DELETED transitions when an object starts
 *   or stops matching; allowWatchBookmarks periodic BOOKMARKs (and one just before a timeout);
 *   sendInitialEvents=true (watch-list) with the initial-events-end bookmark; timeoutSeconds;
 *   Table watches (first event carries the column definitions, later ones do not).
 * - Pod logs: container (400 with the container list when a multi-container pod gets none),
 *   follow, tailLines, timestamps, sinceSeconds, sinceTime, limitBytes, 404 for unknown pods,
 *   400 for a pod whose containers have not started; text/plain, streamed as appended.
 * - Status bodies for errors (NotFound with details, MethodNotAllowed, BadRequest, Gone,
 *   NotAcceptable) and plain "404 page not found" for unknown non-API paths such as /openapi/v2.
 *
 * Simplified or missing:
 * - Read-only over HTTP: POST/PUT/PATCH/DELETE on API paths answer 405 MethodNotAllowed, although
 *   discovery advertises the real verbs. Objects are changed through the `api` test methods,
 *   which do no validation, admission, defaulting beyond metadata and a few status fields,
 *   optimistic concurrency or graceful deletion. Missing namespaces are created on demand
 *   (option autoCreateNamespaces) and deleting a namespace deletes its contents immediately.
 * - No authorization (RBAC), impersonation, audit, or priority and fairness: the one token
 *   (changeable with api.setToken) may do everything, and so may anonymous requests when the
 *   option `anonymous` allows them.
 * - JSON only: no protobuf, YAML or CBOR. HTTP/1.1 only (kube-apiserver also speaks HTTP/2).
 * - No OpenAPI documents: /openapi/v2 and /openapi/v3 are 404 (kubectl explain and server-side
 *   validation of writes do not work; get, logs and watch do not need them).
 * - List resourceVersion semantics other than Exact are served from the latest state; a watch
 *   from a resourceVersion newer than the server's starts at the current state instead of waiting.
 * - No exec/attach/port-forward/proxy subresources, no status subresources, no field managers,
 *   ownerReferences garbage collection or controllers: a deployment's status is what a test sets.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import type { IncomingHttpHeaders, IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';

// ---------------------------------------------------------------------------------------------
// Public types

export type ResourceName = 'pods' | 'namespaces' | 'configmaps' | 'secrets' | 'events' | 'deployments';

export interface ObjectMeta {
  name?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  creationTimestamp?: string;
  generation?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  deletionTimestamp?: string;
  [key: string]: unknown;
}

/** Any Kubernetes object as JSON. The simulator reads well-known fields loosely. */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  // Objects are free-form JSON; `any` keeps test code that builds them short.
  [key: string]: any;
}

export interface RecordedRequest {
  seq: number;
  method: string;
  /** Path without the query string, e.g. /api/v1/namespaces/default/pods. */
  path: string;
  /** Raw query string without the leading '?', '' when there is none. */
  query: string;
  params: URLSearchParams;
  headers: IncomingHttpHeaders;
  /** False when the request failed authentication. */
  authorized: boolean;
  /** The status the simulator answered with (set when the response head is written). */
  status?: number;
  /** True for watch requests (watch=1/true or the /watch/ path prefix). */
  watch: boolean;
  at: Date;
}

export interface KubeSimOptions {
  /** Serve HTTPS with these files; plain HTTP without. */
  tls?: { certFile: string; keyFile: string };
  /** The only bearer token accepted. */
  token: string;
  /**
   * Also serve requests that carry no Authorization header, as a server with anonymous access
   * allowed does (or one behind `kubectl proxy`): kubectl and agentk send no credentials over
   * plain http. A wrong token is still 401. Default false.
   */
  anonymous?: boolean;
  /** Port to listen on (127.0.0.1); default an ephemeral one. */
  port?: number;
  /** Interval between BOOKMARK events of watches that allow them. Default 60 s as kube-apiserver. */
  bookmarkIntervalMs?: number;
  /** Watch duration when the client sends no timeoutSeconds. Default 1800 s. */
  defaultWatchTimeoutSeconds?: number;
  /** Answer /api and /apis with aggregated discovery when asked for it. Default true. */
  aggregatedDiscovery?: boolean;
  /** Changes kept for watches and continue tokens before older ones are compacted. Default 10 000. */
  historyLimit?: number;
  /** What /version reports. Default v1.32.5 (picks kubectl.1.32 behind the gcloud dispatcher). */
  version?: { major: string; minor: string; gitVersion: string };
  /** Create default, kube-system, kube-public and kube-node-lease at start. Default true. */
  seedNamespaces?: boolean;
  /** Create a missing namespace when an object is created in it. Default true. */
  autoCreateNamespaces?: boolean;
}

export interface KubeSimApi {
  /** Stores a new object, filling uid, resourceVersion, creationTimestamp, kind and apiVersion. */
  create(resource: ResourceName, obj: KubeObject): KubeObject;
  /** Replaces an existing object (uid and creationTimestamp are kept), bumping its resourceVersion. */
  update(resource: ResourceName, obj: KubeObject): KubeObject;
  /** Creates or replaces. */
  apply(resource: ResourceName, obj: KubeObject): KubeObject;
  /** Changes a copy of the stored object in place through `mutate` and stores it. */
  modify(resource: ResourceName, namespace: string | undefined, name: string, mutate: (obj: KubeObject) => void): KubeObject;
  /** Deletes and returns the object as of its deletion, undefined when it did not exist. */
  delete(resource: ResourceName, namespace: string | undefined, name: string): KubeObject | undefined;
  get(resource: ResourceName, namespace: string | undefined, name: string): KubeObject | undefined;
  list(resource: ResourceName, namespace?: string): KubeObject[];
  /** Appends a line (or several, split at newlines) to a container's log; default the first container. */
  appendLog(namespace: string, pod: string, line: string, container?: string): void;
  /** Ends follow=true log streams of a pod (as when its container exits). */
  endLogs(namespace: string, pod: string, container?: string): void;
  /** Every request received so far, including unauthenticated ones, oldest first. */
  requests(): RecordedRequest[];
  resetRequests(): void;
  waitForRequest(match: (r: RecordedRequest) => boolean, timeoutMs?: number): Promise<RecordedRequest>;
  /** The latest resourceVersion. */
  resourceVersion(): string;
  /**
   * Forgets the history up to and including `resourceVersion` (default: all of it), like an etcd
   * compaction: watches and continue tokens from before it get 410 Gone.
   */
  compact(resourceVersion?: string): void;
  /** Watches currently streaming. */
  activeWatches(): number;
  /** Ends every watch and log stream (as when the API server restarts). */
  closeStreams(): void;
  setToken(token: string): void;
}

export interface KubeSim {
  url: string;
  port: number;
  api: KubeSimApi;
  /** A kubeconfig (JSON, which kubectl and client-node read as YAML) for this server. */
  kubeconfig(options?: { caFile?: string; token?: string; namespace?: string }): string;
  stop(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Resource definitions

type Json = Record<string, any>;

interface ColumnDefinition {
  name: string;
  type: string;
  format: string;
  description: string;
  priority: number;
}

interface ResourceDef {
  name: ResourceName;
  group: string;
  version: string;
  kind: string;
  singular: string;
  namespaced: boolean;
  shortNames: string[];
  categories: string[];
  verbs: string[];
  storageVersionHash: string;
  subresources: { name: string; kind: string; verbs: string[] }[];
  /** Field selector support beyond metadata.name and metadata.namespace. */
  fields: Record<string, (o: Json) => string>;
  columns: ColumnDefinition[];
  cells: (o: Json, now: number) => unknown[];
  rowConditions?: (o: Json) => Json[] | undefined;
}

const allVerbs = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];
const clusterVerbs = ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'];

const nameColumn: ColumnDefinition = {
  name: 'Name',
  type: 'string',
  format: 'name',
  description: 'Name must be unique within a namespace. Cannot be updated.',
  priority: 0,
};
const ageColumn: ColumnDefinition = {
  name: 'Age',
  type: 'string',
  format: '',
  description: 'CreationTimestamp is a timestamp representing the server time when this object was created.',
  priority: 0,
};
function column(name: string, type: string, description: string, priority = 0): ColumnDefinition {
  return { name, type, format: '', description, priority };
}

const resources: ResourceDef[] = [
  {
    name: 'pods',
    group: '',
    version: 'v1',
    kind: 'Pod',
    singular: 'pod',
    namespaced: true,
    shortNames: ['po'],
    categories: ['all'],
    verbs: allVerbs,
    storageVersionHash: 'xPOwRZ+Yhw8=',
    subresources: [{ name: 'log', kind: 'Pod', verbs: ['get'] }],
    fields: {
      'spec.nodeName': (o) => str(o['spec']?.nodeName),
      'spec.restartPolicy': (o) => str(o['spec']?.restartPolicy),
      'spec.schedulerName': (o) => str(o['spec']?.schedulerName),
      'spec.serviceAccountName': (o) => str(o['spec']?.serviceAccountName),
      'spec.hostNetwork': (o) => String(Boolean(o['spec']?.hostNetwork)),
      'status.phase': (o) => str(o['status']?.phase),
      'status.podIP': (o) => str(o['status']?.podIP),
      'status.nominatedNodeName': (o) => str(o['status']?.nominatedNodeName),
    },
    columns: [
      nameColumn,
      column('Ready', 'string', 'The aggregate readiness state of this pod for accepting traffic.'),
      column('Status', 'string', 'The aggregate status of the containers in this pod.'),
      column('Restarts', 'string', 'The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.'),
      ageColumn,
      column('IP', 'string', 'IP address allocated to the pod. Routable at least within the cluster.', 1),
      column('Node', 'string', 'NodeName is a request to schedule this pod onto a specific node.', 1),
      column('Nominated Node', 'string', 'nominatedNodeName is set only when this pod preempts other pods on the node.', 1),
      column('Readiness Gates', 'string', 'If specified, all readiness gates will be evaluated for pod readiness.', 1),
    ],
    cells: podCells,
    rowConditions: (o) => {
      const phase = o['status']?.phase;
      if (phase === 'Succeeded') return [{ type: 'Completed', status: 'True', reason: phase, message: 'The pod has completed successfully.' }];
      if (phase === 'Failed') return [{ type: 'Completed', status: 'True', reason: phase, message: 'The pod failed.' }];
      return undefined;
    },
  },
  {
    name: 'namespaces',
    group: '',
    version: 'v1',
    kind: 'Namespace',
    singular: 'namespace',
    namespaced: false,
    shortNames: ['ns'],
    categories: [],
    verbs: clusterVerbs,
    storageVersionHash: 'Q3oi5N2YM8M=',
    subresources: [],
    fields: { 'status.phase': (o) => str(o['status']?.phase) },
    columns: [nameColumn, column('Status', 'string', 'The status of the namespace'), ageColumn],
    cells: (o, now) => [o['metadata'].name, str(o['status']?.phase), age(o, now)],
  },
  {
    name: 'configmaps',
    group: '',
    version: 'v1',
    kind: 'ConfigMap',
    singular: 'configmap',
    namespaced: true,
    shortNames: ['cm'],
    categories: [],
    verbs: allVerbs,
    storageVersionHash: 'qFsyl6wFWjQ=',
    subresources: [],
    fields: {},
    columns: [nameColumn, column('Data', 'integer', 'Data contains the configuration data.'), ageColumn],
    cells: (o, now) => [
      o['metadata'].name,
      Object.keys(o['data'] ?? {}).length + Object.keys(o['binaryData'] ?? {}).length,
      age(o, now),
    ],
  },
  {
    name: 'secrets',
    group: '',
    version: 'v1',
    kind: 'Secret',
    singular: 'secret',
    namespaced: true,
    shortNames: [],
    categories: [],
    verbs: allVerbs,
    storageVersionHash: 'S6u1pOWzb84=',
    subresources: [],
    fields: { type: (o) => str(o['type']) },
    columns: [
      nameColumn,
      column('Type', 'string', 'Used to facilitate programmatic handling of secret data.'),
      column('Data', 'integer', 'Data contains the secret data.'),
      ageColumn,
    ],
    cells: (o, now) => [o['metadata'].name, str(o['type']), Object.keys(o['data'] ?? {}).length, age(o, now)],
  },
  {
    name: 'events',
    group: '',
    version: 'v1',
    kind: 'Event',
    singular: 'event',
    namespaced: true,
    shortNames: ['ev'],
    categories: [],
    verbs: allVerbs,
    storageVersionHash: 'r2yiGXH7wu8=',
    subresources: [],
    fields: {
      'involvedObject.kind': (o) => str(o['involvedObject']?.kind),
      'involvedObject.namespace': (o) => str(o['involvedObject']?.namespace),
      'involvedObject.name': (o) => str(o['involvedObject']?.name),
      'involvedObject.uid': (o) => str(o['involvedObject']?.uid),
      'involvedObject.apiVersion': (o) => str(o['involvedObject']?.apiVersion),
      'involvedObject.resourceVersion': (o) => str(o['involvedObject']?.resourceVersion),
      'involvedObject.fieldPath': (o) => str(o['involvedObject']?.fieldPath),
      reason: (o) => str(o['reason']),
      reportingComponent: (o) => str(o['reportingComponent']),
      source: (o) => str(o['source']?.component),
      type: (o) => str(o['type']),
    },
    columns: [
      column('Last Seen', 'string', 'The time at which the most recent occurrence of this event was recorded.'),
      column('Type', 'string', 'Type of this event (Normal, Warning), new types could be added in the future.'),
      column('Reason', 'string', 'This should be a short, machine understandable string that gives the reason for the transition into the object\'s current status.'),
      column('Object', 'string', 'The object that this event is about.'),
      column('Subobject', 'string', 'The subobject this event is about, e.g. a container of a pod.', 1),
      column('Source', 'string', 'The component reporting this event.', 1),
      column('Message', 'string', 'A human-readable description of the status of this operation.'),
      column('First Seen', 'string', 'The time at which the event was first recorded.', 1),
      column('Count', 'integer', 'The number of times this event has occurred.', 1),
      { ...nameColumn, priority: 1 },
    ],
    cells: eventCells,
  },
  {
    name: 'deployments',
    group: 'apps',
    version: 'v1',
    kind: 'Deployment',
    singular: 'deployment',
    namespaced: true,
    shortNames: ['deploy'],
    categories: ['all'],
    verbs: allVerbs,
    storageVersionHash: '8aSe+NMegvE=',
    subresources: [],
    fields: {},
    columns: [
      nameColumn,
      column('Ready', 'string', 'Number of the pod with ready state'),
      column('Up-to-date', 'integer', 'Total number of non-terminated pods targeted by this deployment that have the desired template spec.'),
      column('Available', 'integer', 'Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.'),
      ageColumn,
      column('Containers', 'string', 'Names of each container in the template.', 1),
      column('Images', 'string', 'Images referenced by each container in the template.', 1),
      column('Selector', 'string', 'Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.', 1),
    ],
    cells: (o, now) => {
      const containers: Json[] = o['spec']?.template?.spec?.containers ?? [];
      return [
        o['metadata'].name,
        `${o['status']?.readyReplicas ?? 0}/${o['spec']?.replicas ?? 1}`,
        o['status']?.updatedReplicas ?? 0,
        o['status']?.availableReplicas ?? 0,
        age(o, now),
        containers.map((c) => c['name']).join(','),
        containers.map((c) => c['image']).join(','),
        formatLabelSelector(o['spec']?.selector),
      ];
    },
  },
];

const resourceByName = new Map(resources.map((def) => [def.name, def]));
const groups = [...new Set(resources.map((def) => def.group))];

function apiVersionOf(def: ResourceDef): string {
  return def.group === '' ? def.version : `${def.group}/${def.version}`;
}

function defOf(resource: ResourceName): ResourceDef {
  const def = resourceByName.get(resource);
  if (def === undefined) throw new Error(`the simulator does not serve ${resource}`);
  return def;
}

// ---------------------------------------------------------------------------------------------
// Printing helpers (server-side Table cells)

function str(value: unknown): string {
  return value === undefined || value === null ? '' : String(value);
}

function orNone(value: unknown): string {
  const s = str(value);
  return s === '' ? '<none>' : s;
}

/** k8s.io/apimachinery/pkg/util/duration.HumanDuration */
export function humanDuration(ms: number): string {
  const seconds = Math.trunc(ms / 1000);
  if (seconds < -1) return '<invalid>';
  if (seconds < 0) return '0s';
  if (seconds < 60 * 2) return `${seconds}s`;
  const minutes = Math.trunc(seconds / 60);
  if (minutes < 10) {
    const s = seconds % 60;
    return s === 0 ? `${minutes}m` : `${minutes}m${s}s`;
  }
  if (minutes < 60 * 3) return `${minutes}m`;
  const hours = Math.trunc(minutes / 60);
  if (hours < 8) {
    const m = minutes % 60;
    return m === 0 ? `${hours}h` : `${hours}h${m}m`;
  }
  if (hours < 48) return `${hours}h`;
  if (hours < 24 * 8) {
    const h = hours % 24;
    return h === 0 ? `${Math.trunc(hours / 24)}d` : `${Math.trunc(hours / 24)}d${h}h`;
  }
  if (hours < 24 * 365 * 2) return `${Math.trunc(hours / 24)}d`;
  if (hours < 24 * 365 * 8) {
    const dy = Math.trunc(hours / 24) % 365;
    const years = Math.trunc(hours / 24 / 365);
    return dy === 0 ? `${years}y` : `${years}y${dy}d`;
  }
  return `${Math.trunc(hours / 24 / 365)}y`;
}

function since(timestamp: unknown, now: number): string {
  if (typeof timestamp !== 'string' || timestamp === '') return '<unknown>';
  return humanDuration(now - Date.parse(timestamp));
}

function age(o: Json, now: number): string {
  return since(o['metadata']?.creationTimestamp, now);
}

function podCells(o: Json, now: number): unknown[] {
  const spec = o['spec'] ?? {};
  const status = o['status'] ?? {};
  const containers: Json[] = spec.containers ?? [];
  const statuses: Json[] = status.containerStatuses ?? [];
  let reason: string = status.reason || status.phase || '';
  let restarts = 0;
  let lastRestart: number | undefined;
  let ready = 0;
  let hasRunning = false;
  for (const cs of [...statuses].reverse()) {
    restarts += Number(cs['restartCount'] ?? 0);
    const finishedAt = cs['lastState']?.terminated?.finishedAt;
    if (typeof finishedAt === 'string') {
      const t = Date.parse(finishedAt);
      if (lastRestart === undefined || t > lastRestart) lastRestart = t;
    }
    const state = cs['state'] ?? {};
    if (state.waiting?.reason) reason = state.waiting.reason;
    else if (state.terminated?.reason) reason = state.terminated.reason;
    else if (state.terminated) {
      reason = state.terminated.signal ? `Signal:${state.terminated.signal}` : `ExitCode:${state.terminated.exitCode ?? 0}`;
    } else if (cs['ready'] && state.running) {
      hasRunning = true;
      ready++;
    }
  }
  if (reason === 'Completed' && hasRunning) reason = 'Running';
  if (o['metadata']?.deletionTimestamp) reason = status.reason === 'NodeLost' ? 'Unknown' : 'Terminating';
  const restartCell = lastRestart === undefined || restarts === 0 ? String(restarts) : `${restarts} (${humanDuration(now - lastRestart)} ago)`;
  const gates: Json[] = spec.readinessGates ?? [];
  return [
    o['metadata'].name,
    `${ready}/${containers.length}`,
    reason,
    restartCell,
    age(o, now),
    orNone(status.podIP),
    orNone(spec.nodeName),
    orNone(status.nominatedNodeName),
    gates.length === 0 ? '<none>' : `0/${gates.length}`,
  ];
}

function eventCells(o: Json, now: number): unknown[] {
  const last = o['lastTimestamp'] || o['eventTime'] || o['metadata']?.creationTimestamp;
  const first = o['firstTimestamp'] || o['eventTime'] || o['metadata']?.creationTimestamp;
  const count = Number(o['count'] ?? o['series']?.count ?? 1);
  const lastSeen = count > 1 ? `${since(last, now)} (x${count} over ${since(first, now)})` : since(last, now);
  const involved = o['involvedObject'] ?? {};
  const source = o['source'] ?? {};
  const sourceText = [source.component || o['reportingComponent'], source.host].filter(Boolean).join(', ');
  return [
    lastSeen,
    str(o['type']),
    str(o['reason']),
    `${str(involved.kind).toLowerCase()}/${str(involved.name)}`,
    str(involved.fieldPath),
    sourceText,
    str(o['message']),
    since(first, now),
    count,
    o['metadata'].name,
  ];
}

function formatLabelSelector(selector: Json | undefined): string {
  if (selector === undefined) return '<none>';
  const parts: string[] = [];
  for (const [k, v] of Object.entries(selector['matchLabels'] ?? {}).sort(([a], [b]) => (a < b ? -1 : 1))) parts.push(`${k}=${v}`);
  for (const e of (selector['matchExpressions'] ?? []) as Json[]) {
    const op = String(e['operator']);
    if (op === 'Exists') parts.push(e['key']);
    else if (op === 'DoesNotExist') parts.push(`!${e['key']}`);
    else parts.push(`${e['key']} ${op.toLowerCase()} (${(e['values'] ?? []).join(',')})`);
  }
  return parts.length === 0 ? '<none>' : parts.join(',');
}

// ---------------------------------------------------------------------------------------------
// Selectors

type LabelRequirement =
  | { key: string; op: 'exists' | '!' }
  | { key: string; op: '=' | '!='; value: string }
  | { key: string; op: 'in' | 'notin'; values: string[] }
  | { key: string; op: '>' | '<'; value: number };

class BadRequest extends Error {}

/** Parses a label selector string (k8s.io/apimachinery/pkg/labels.Parse syntax). */
export function parseLabelSelector(text: string): LabelRequirement[] {
  const tokens: string[] = [];
  const re = /\s*(!=|==|=|!|\(|\)|,|>|<|[^\s!=(),<>]+)/y;
  let pos = 0;
  while (pos < text.length) {
    re.lastIndex = pos;
    const m = re.exec(text);
    if (m === null) {
      if (text.slice(pos).trim() === '') break;
      throw new BadRequest(`unable to parse requirement: invalid label selector ${JSON.stringify(text)}`);
    }
    tokens.push(m[1] ?? '');
    pos = re.lastIndex;
  }
  const out: LabelRequirement[] = [];
  let i = 0;
  const peek = () => tokens[i];
  const next = () => tokens[i++];
  const isWord = (t: string | undefined) => t !== undefined && !['!=', '==', '=', '!', '(', ')', ',', '>', '<'].includes(t);
  const fail = (why: string): never => {
    throw new BadRequest(`unable to parse requirement: ${why} in label selector ${JSON.stringify(text)}`);
  };
  while (i < tokens.length) {
    if (peek() === '!') {
      next();
      const key = next();
      if (!isWord(key)) fail('expected a key after !');
      out.push({ key: key as string, op: '!' });
    } else {
      const key = next();
      if (!isWord(key)) fail(`unexpected ${JSON.stringify(key)}`);
      const op = peek();
      if (op === undefined || op === ',') {
        out.push({ key: key as string, op: 'exists' });
      } else if (op === '=' || op === '==' || op === '!=') {
        next();
        const value = isWord(peek()) ? (next() as string) : '';
        out.push({ key: key as string, op: op === '!=' ? '!=' : '=', value });
      } else if (op === 'in' || op === 'notin') {
        next();
        if (next() !== '(') fail(`expected ( after ${op}`);
        const values: string[] = [];
        for (;;) {
          const t = next();
          if (t === ')') break;
          if (t === ',') continue;
          if (!isWord(t)) fail('unterminated value list');
          values.push(t as string);
        }
        out.push({ key: key as string, op, values });
      } else if (op === '>' || op === '<') {
        next();
        const value = Number(next());
        if (!Number.isInteger(value)) fail(`expected an integer after ${op}`);
        out.push({ key: key as string, op, value });
      } else {
        fail(`unexpected ${JSON.stringify(op)} after ${key}`);
      }
    }
    if (i < tokens.length && next() !== ',') fail('expected ,');
  }
  return out;
}

function labelsMatch(requirements: LabelRequirement[], labels: Record<string, string> | undefined): boolean {
  const l = labels ?? {};
  return requirements.every((r) => {
    const has = Object.hasOwn(l, r.key);
    const v = l[r.key];
    switch (r.op) {
      case 'exists':
        return has;
      case '!':
        return !has;
      case '=':
        return has && v === r.value;
      case '!=':
        return !has || v !== r.value;
      case 'in':
        return has && r.values.includes(v as string);
      case 'notin':
        return !has || !r.values.includes(v as string);
      case '>':
        return has && Number(v) > r.value;
      case '<':
        return has && Number(v) < r.value;
    }
  });
}

interface FieldRequirement {
  field: string;
  op: '=' | '!=';
  value: string;
  get: (o: Json) => string;
}

function parseFieldSelector(text: string, def: ResourceDef): FieldRequirement[] {
  const out: FieldRequirement[] = [];
  for (const term of splitUnescaped(text, ',')) {
    if (term.trim() === '') continue;
    const m = /^\s*([^!=\s]+)\s*(!=|==|=)\s*(.*?)\s*$/s.exec(term);
    if (m === null) throw new BadRequest(`invalid selector: '${text}'; can't understand '${term}'`);
    const field = m[1] as string;
    const get = fieldGetter(def, field);
    if (get === undefined) throw new BadRequest(`field label not supported: ${field}`);
    out.push({ field, op: m[2] === '!=' ? '!=' : '=', value: unescapeField(m[3] ?? ''), get });
  }
  return out;
}

function fieldGetter(def: ResourceDef, field: string): ((o: Json) => string) | undefined {
  if (field === 'metadata.name') return (o) => str(o['metadata']?.name);
  if (field === 'metadata.namespace') return (o) => str(o['metadata']?.namespace);
  return def.fields[field];
}

function splitUnescaped(text: string, sep: string): string[] {
  const parts: string[] = [];
  let current = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (c === '\\' && i + 1 < text.length) {
      current += c + text[i + 1];
      i++;
    } else if (c === sep) {
      parts.push(current);
      current = '';
    } else current += c;
  }
  parts.push(current);
  return parts;
}

function unescapeField(value: string): string {
  return value.replace(/\\(.)/g, '$1');
}

function fieldsMatch(requirements: FieldRequirement[], o: Json): boolean {
  return requirements.every((r) => (r.get(o) === r.value) === (r.op === '='));
}

// ---------------------------------------------------------------------------------------------
// Store: objects, history and change notification

type ChangeType = 'ADDED' | 'MODIFIED' | 'DELETED';

interface Change {
  rv: number;
  def: ResourceDef;
  type: ChangeType;
  /** The object after the change (for DELETED: as deleted, carrying the deletion's resourceVersion). */
  object: KubeObject;
  /** The object before the change, for MODIFIED and DELETED. */
  prev?: KubeObject;
}

function keyOf(def: ResourceDef, namespace: string | undefined, name: string): string {
  return def.namespaced ? `${namespace ?? ''}/${name}` : name;
}

function clone<T>(value: T): T {
  return structuredClone(value);
}

function nowTimestamp(): string {
  return new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
}

class Store {
  rv: number;
  compactedRv: number;
  readonly objects = new Map<ResourceName, Map<string, KubeObject>>();
  history: Change[] = [];
  readonly listeners = new Set<(change: Change) => void>();
  readonly historyLimit: number;

  constructor(historyLimit: number) {
    this.rv = 100;
    this.compactedRv = this.rv;
    this.historyLimit = historyLimit;
    for (const def of resources) this.objects.set(def.name, new Map());
  }

  table(def: ResourceDef): Map<string, KubeObject> {
    return this.objects.get(def.name) as Map<string, KubeObject>;
  }

  record(def: ResourceDef, type: ChangeType, object: KubeObject, prev?: KubeObject): void {
    const change: Change = { rv: this.rv, def, type, object, prev };
    this.history.push(change);
    while (this.history.length > this.historyLimit) {
      const dropped = this.history.shift() as Change;
      this.compactedRv = dropped.rv;
    }
    for (const listener of [...this.listeners]) listener(change);
  }

  compact(rv: number): void {
    const upTo = Math.min(rv, this.rv);
    this.history = this.history.filter((c) => c.rv > upTo);
    this.compactedRv = Math.max(this.compactedRv, upTo);
  }

  /** The objects of one resource as of `rv`, sorted by key, rebuilt by undoing later changes. */
  stateAt(def: ResourceDef, rv: number): [string, KubeObject][] {
    const state = new Map(this.table(def));
    for (let i = this.history.length - 1; i >= 0; i--) {
      const change = this.history[i] as Change;
      if (change.rv <= rv) break;
      if (change.def !== def) continue;
      const key = keyOf(def, change.object.metadata.namespace, change.object.metadata.name ?? '');
      if (change.type === 'ADDED') state.delete(key);
      else if (change.prev !== undefined) state.set(key, change.prev);
    }
    return [...state.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  }
}

// ---------------------------------------------------------------------------------------------
// Content negotiation

interface MediaRange {
  type: string;
  params: Record<string, string>;
}

function parseAccept(header: string | undefined): MediaRange[] {
  if (header === undefined || header.trim() === '') return [];
  return header.split(',').map((part) => {
    const [type = '', ...rest] = part.split(';').map((s) => s.trim());
    const params: Record<string, string> = {};
    for (const p of rest) {
      const eq = p.indexOf('=');
      if (eq > 0) params[p.slice(0, eq).trim().toLowerCase()] = p.slice(eq + 1).trim().replace(/^"|"$/g, '');
    }
    return { type: type.toLowerCase(), params };
  });
}

function isJsonRange(type: string): boolean {
  return type === 'application/json' || type === 'application/*' || type === '*/*';
}

type Representation =
  | { as: 'object' }
  | { as: 'table'; version: 'v1' | 'v1beta1' }
  | { as: 'metadata'; version: 'v1' | 'v1beta1' };

/** The first Accept entry we can produce, undefined when none is acceptable (406). */
function negotiate(accept: string | undefined, list: boolean): Representation | undefined {
  const ranges = parseAccept(accept);
  if (ranges.length === 0) return { as: 'object' };
  for (const r of ranges) {
    if (!isJsonRange(r.type)) continue;
    const as = r.params['as'];
    if (as === undefined) {
      if (r.params['g'] === undefined && r.params['v'] === undefined) return { as: 'object' };
      continue;
    }
    const version = r.params['v'];
    if (r.params['g'] !== 'meta.k8s.io' || (version !== 'v1' && version !== 'v1beta1')) continue;
    if (as === 'Table') return { as: 'table', version };
    if (as === (list ? 'PartialObjectMetadataList' : 'PartialObjectMetadata')) return { as: 'metadata', version };
  }
  return undefined;
}

function contentTypeOf(rep: Representation, list: boolean): string {
  if (rep.as === 'table') return `application/json;as=Table;v=${rep.version};g=meta.k8s.io`;
  if (rep.as === 'metadata') {
    return `application/json;as=${list ? 'PartialObjectMetadataList' : 'PartialObjectMetadata'};v=${rep.version};g=meta.k8s.io`;
  }
  return 'application/json';
}

// ---------------------------------------------------------------------------------------------
// The server

interface LogLine {
  at: Date;
  text: string;
}

interface LogFollower {
  key: string;
  write: (line: LogLine) => void;
  end: () => void;
}

interface RoutedResource {
  def: ResourceDef;
  namespace?: string;
  name?: string;
  subresource?: string;
  legacyWatch: boolean;
}

function boolParam(params: URLSearchParams, name: string): boolean {
  const v = params.get(name);
  return v !== null && ['1', 't', 'T', 'true', 'TRUE', 'True'].includes(v);
}

function statusBody(code: number, reason: string, message: string, details?: Json): Json {
  const body: Json = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason };
  if (details !== undefined) body['details'] = details;
  body['code'] = code;
  return body;
}

function qualifiedResource(def: ResourceDef): string {
  return def.group === '' ? def.name : `${def.name}.${def.group}`;
}

function notFound(def: ResourceDef, name: string): Json {
  const details: Json = { name };
  if (def.group !== '') details['group'] = def.group;
  details['kind'] = def.name;
  return statusBody(404, 'NotFound', `${qualifiedResource(def)} "${name}" not found`, details);
}

function rfc3339Nano(at: Date): string {
  return at.toISOString().replace(/\.(\d*?)0*Z$/, (_m, digits: string) => (digits === '' ? 'Z' : `.${digits}Z`));
}

export async function startKubeSim(options: KubeSimOptions): Promise<KubeSim> {
  let token = options.token;
  const bookmarkIntervalMs = options.bookmarkIntervalMs ?? 60_000;
  const defaultWatchTimeoutSeconds = options.defaultWatchTimeoutSeconds ?? 1800;
  const aggregatedDiscovery = options.aggregatedDiscovery ?? true;
  const version = options.version ?? { major: '1', minor: '32', gitVersion: 'v1.32.5' };
  const autoCreateNamespaces = options.autoCreateNamespaces ?? true;
  const store = new Store(options.historyLimit ?? 10_000);
  const recorded: RecordedRequest[] = [];
  const requestWaiters = new Set<(r: RecordedRequest) => void>();
  let seq = 0;
  const logs = new Map<string, Map<string, LogLine[]>>(); // "ns/pod" -> container -> lines
  const followers = new Set<LogFollower>();
  const streams = new Set<() => void>(); // enders of watches and log streams
  let watchCount = 0;
  const flowSchemaUid = randomUUID();
  const priorityLevelUid = randomUUID();

  // ---- object mutation (test API) ----

  function prepare(def: ResourceDef, input: KubeObject): KubeObject {
    const obj = clone(input);
    obj.apiVersion = apiVersionOf(def);
    obj.kind = def.kind;
    obj.metadata = obj.metadata ?? {};
    if (!obj.metadata.name) throw new Error(`${def.kind} needs metadata.name`);
    if (def.namespaced) obj.metadata.namespace = obj.metadata.namespace || 'default';
    else delete obj.metadata.namespace;
    if (def.name === 'secrets') {
      obj['type'] = obj['type'] ?? 'Opaque';
      if (obj['stringData'] !== undefined) {
        const data: Record<string, string> = { ...(obj['data'] ?? {}) };
        for (const [k, v] of Object.entries(obj['stringData'] as Record<string, string>)) data[k] = Buffer.from(v).toString('base64');
        obj['data'] = data;
        delete obj['stringData'];
      }
    }
    if (def.name === 'namespaces') {
      obj['spec'] = obj['spec'] ?? { finalizers: ['kubernetes'] };
      obj['status'] = { phase: 'Active', ...(obj['status'] ?? {}) };
    }
    if (def.name === 'pods') obj['status'] = { phase: 'Pending', ...(obj['status'] ?? {}) };
    return obj;
  }

  function ensureNamespace(namespace: string | undefined): void {
    if (namespace === undefined) return;
    const nsDef = defOf('namespaces');
    if (store.table(nsDef).has(namespace)) return;
    if (!autoCreateNamespaces) throw new Error(`namespaces "${namespace}" not found`);
    create('namespaces', { metadata: { name: namespace } });
  }

  function create(resource: ResourceName, input: KubeObject): KubeObject {
    const def = defOf(resource);
    const obj = prepare(def, input);
    const key = keyOf(def, obj.metadata.namespace, obj.metadata.name as string);
    if (store.table(def).has(key)) throw new Error(`${qualifiedResource(def)} "${obj.metadata.name}" already exists`);
    if (def.namespaced) ensureNamespace(obj.metadata.namespace);
    store.rv++;
    obj.metadata.uid = obj.metadata.uid || randomUUID();
    obj.metadata.creationTimestamp = obj.metadata.creationTimestamp || nowTimestamp();
    obj.metadata.resourceVersion = String(store.rv);
    if (def.name === 'deployments') obj.metadata.generation = 1;
    store.table(def).set(key, obj);
    store.record(def, 'ADDED', clone(obj));
    return clone(obj);
  }

  function update(resource: ResourceName, input: KubeObject): KubeObject {
    const def = defOf(resource);
    const obj = prepare(def, input);
    const key = keyOf(def, obj.metadata.namespace, obj.metadata.name as string);
    const prev = store.table(def).get(key);
    if (prev === undefined) throw new Error(`${qualifiedResource(def)} "${obj.metadata.name}" not found`);
    store.rv++;
    obj.metadata.uid = prev.metadata.uid;
    obj.metadata.creationTimestamp = prev.metadata.creationTimestamp;
    obj.metadata.resourceVersion = String(store.rv);
    if (prev.metadata.generation !== undefined) {
      const specChanged = JSON.stringify(prev['spec']) !== JSON.stringify(obj['spec']);
      obj.metadata.generation = prev.metadata.generation + (specChanged ? 1 : 0);
    }
    store.table(def).set(key, obj);
    store.record(def, 'MODIFIED', clone(obj), clone(prev));
    return clone(obj);
  }

  function remove(resource: ResourceName, namespace: string | undefined, name: string): KubeObject | undefined {
    const def = defOf(resource);
    const ns = def.namespaced ? namespace || 'default' : undefined;
    const key = keyOf(def, ns, name);
    const prev = store.table(def).get(key);
    if (prev === undefined) return undefined;
    if (def.name === 'namespaces') {
      for (const other of resources) {
        if (!other.namespaced) continue;
        for (const o of [...store.table(other).values()]) {
          if (o.metadata.namespace === name) remove(other.name, name, o.metadata.name as string);
        }
      }
    }
    store.rv++;
    store.table(def).delete(key);
    const deleted = clone(prev);
    deleted.metadata.resourceVersion = String(store.rv);
    store.record(def, 'DELETED', deleted, clone(prev));
    if (def.name === 'pods') {
      const logKey = `${ns}/${name}`;
      logs.delete(logKey);
      for (const f of [...followers]) if (f.key.startsWith(`${logKey}/`)) f.end();
    }
    return clone(deleted);
  }

  function getObject(def: ResourceDef, namespace: string | undefined, name: string): KubeObject | undefined {
    return store.table(def).get(keyOf(def, def.namespaced ? namespace || 'default' : undefined, name));
  }

  function containersOf(pod: KubeObject): string[] {
    return ((pod['spec']?.containers ?? []) as Json[]).map((c) => String(c['name']));
  }

  function appendLog(namespace: string, podName: string, line: string, container?: string): void {
    const pod = getObject(defOf('pods'), namespace, podName);
    if (pod === undefined) throw new Error(`pods "${podName}" not found in namespace ${namespace}`);
    const names = containersOf(pod);
    const c = container ?? names[0];
    if (c === undefined || !names.includes(c)) throw new Error(`container ${c} is not valid for pod ${podName}`);
    const podKey = `${namespace}/${podName}`;
    let byContainer = logs.get(podKey);
    if (byContainer === undefined) logs.set(podKey, (byContainer = new Map()));
    let lines = byContainer.get(c);
    if (lines === undefined) byContainer.set(c, (lines = []));
    for (const text of line.replace(/\n$/, '').split('\n')) {
      const entry = { at: new Date(), text };
      lines.push(entry);
      for (const f of followers) if (f.key === `${podKey}/${c}`) f.write(entry);
    }
  }

  // ---- HTTP ----

  function head(res: ServerResponse, record: RecordedRequest, status: number, contentType: string, extra: Record<string, string> = {}): void {
    record.status = status;
    res.writeHead(status, {
      'Audit-Id': randomUUID(),
      'Cache-Control': 'no-cache, private',
      'Content-Type': contentType,
      'X-Kubernetes-Pf-Flowschema-Uid': flowSchemaUid,
      'X-Kubernetes-Pf-Prioritylevel-Uid': priorityLevelUid,
      ...extra,
    });
  }

  function sendJson(res: ServerResponse, record: RecordedRequest, status: number, body: unknown, contentType = 'application/json'): void {
    const text = JSON.stringify(body) + '\n';
    head(res, record, status, contentType, { 'Content-Length': String(Buffer.byteLength(text)) });
    res.end(text);
  }

  function sendStatus(res: ServerResponse, record: RecordedRequest, body: Json): void {
    sendJson(res, record, body['code'] as number, body);
  }

  function pageNotFound(res: ServerResponse, record: RecordedRequest): void {
    const text = '404 page not found\n';
    head(res, record, 404, 'text/plain; charset=utf-8', { 'X-Content-Type-Options': 'nosniff', 'Content-Length': String(text.length) });
    res.end(text);
  }

  const serverNotFound = () => statusBody(404, 'NotFound', 'the server could not find the requested resource', {});
  const methodNotAllowed = () => statusBody(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource', {});

  function handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://sim');
    const record: RecordedRequest = {
      seq: ++seq,
      method: req.method ?? 'GET',
      path: url.pathname,
      query: url.search.replace(/^\?/, ''),
      params: url.searchParams,
      headers: req.headers,
      authorized: req.headers.authorization === `Bearer ${token}` || (options.anonymous === true && req.headers.authorization === undefined),
      watch: boolParam(url.searchParams, 'watch') || /^\/apis?\/(?:[^/]+\/)?v1\/watch\//.test(url.pathname),
      at: new Date(),
    };
    recorded.push(record);
    for (const waiter of [...requestWaiters]) waiter(record);

    if (!record.authorized) return sendStatus(res, record, statusBody(401, 'Unauthorized', 'Unauthorized'));
    try {
      route(req, res, url, record);
    } catch (err) {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      if (err instanceof BadRequest) sendStatus(res, record, statusBody(400, 'BadRequest', err.message));
      else sendStatus(res, record, statusBody(500, 'InternalError', `simulator error: ${(err as Error).stack ?? String(err)}`));
    }
  }

  function route(req: IncomingMessage, res: ServerResponse, url: URL, record: RecordedRequest): void {
    const method = record.method;
    const readOnly = method === 'GET' || method === 'HEAD';
    const segments = url.pathname.split('/').filter((s) => s !== '').map((s) => decodeURIComponent(s));
    const accept = req.headers.accept;
    const [root] = segments;

    if (segments.length === 1 && ['healthz', 'livez', 'readyz'].includes(root ?? '')) {
      if (!readOnly) return sendStatus(res, record, methodNotAllowed());
      head(res, record, 200, 'text/plain; charset=utf-8', { 'X-Content-Type-Options': 'nosniff', 'Content-Length': '2' });
      return void res.end('ok');
    }
    if (segments.length === 1 && root === 'version') {
      if (!readOnly) return sendStatus(res, record, methodNotAllowed());
      return sendJson(res, record, 200, {
        ...version,
        gitCommit: '0000000000000000000000000000000000000000',
        gitTreeState: 'clean',
        buildDate: '2025-01-01T00:00:00Z',
        goVersion: 'go1.23.8',
        compiler: 'gc',
        platform: 'linux/amd64',
      });
    }
    if (root !== 'api' && root !== 'apis') return pageNotFound(res, record);

    // Discovery documents.
    const discovery = discoveryDocument(segments, accept, url);
    if (discovery !== undefined) {
      if (!readOnly) return sendStatus(res, record, methodNotAllowed());
      if (discovery === 'notAcceptable') return sendStatus(res, record, notAcceptable());
      return sendJson(res, record, 200, discovery.body, discovery.contentType);
    }

    const routed = routeResource(segments);
    if (routed === 'pageNotFound') return pageNotFound(res, record);
    if (routed === undefined) return sendStatus(res, record, serverNotFound());
    if (!readOnly) return sendStatus(res, record, methodNotAllowed());
    if (routed.subresource === 'log') return serveLogs(req, res, url, record, routed);
    if (routed.subresource !== undefined) return sendStatus(res, record, serverNotFound());

    const watch = routed.legacyWatch || boolParam(url.searchParams, 'watch');
    if (watch) return serveWatch(req, res, url, record, routed);
    if (routed.name !== undefined) return serveGet(res, url, record, routed, accept);
    return serveList(res, url, record, routed, accept);
  }

  const notAcceptable = () =>
    statusBody(406, 'NotAcceptable', 'only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf');

  function routeResource(segments: string[]): RoutedResource | 'pageNotFound' | undefined {
    let rest: string[];
    let group: string;
    if (segments[0] === 'api') {
      if (segments[1] !== 'v1') return 'pageNotFound';
      group = '';
      rest = segments.slice(2);
    } else {
      group = segments[1] ?? '';
      if (!groups.includes(group) || group === '') return 'pageNotFound';
      if (segments[2] !== 'v1') return 'pageNotFound';
      rest = segments.slice(3);
    }
    let legacyWatch = false;
    if (rest[0] === 'watch') {
      legacyWatch = true;
      rest = rest.slice(1);
    }
    let namespace: string | undefined;
    if (rest[0] === 'namespaces' && rest.length >= 3) {
      namespace = rest[1];
      rest = rest.slice(2);
    }
    const [resource, name, subresource, ...extra] = rest;
    if (extra.length > 0) return undefined;
    const def = resources.find((d) => d.group === group && d.name === resource);
    if (def === undefined) return undefined;
    if (namespace !== undefined && !def.namespaced) return undefined;
    if (subresource !== undefined && !def.subresources.some((s) => s.name === subresource)) return undefined;
    if (legacyWatch && subresource !== undefined) return undefined;
    return { def, namespace, name, subresource, legacyWatch };
  }

  // ---- discovery ----

  function resourceList(group: string): Json {
    const defs = resources.filter((d) => d.group === group);
    const list: Json[] = [];
    for (const d of defs) {
      const entry: Json = { name: d.name, singularName: d.singular, namespaced: d.namespaced, kind: d.kind, verbs: d.verbs };
      if (d.shortNames.length > 0) entry['shortNames'] = d.shortNames;
      if (d.categories.length > 0) entry['categories'] = d.categories;
      entry['storageVersionHash'] = d.storageVersionHash;
      list.push(entry);
      for (const s of d.subresources) {
        list.push({ name: `${d.name}/${s.name}`, singularName: '', namespaced: d.namespaced, kind: s.kind, verbs: s.verbs });
      }
    }
    return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: group === '' ? 'v1' : `${group}/v1`, resources: list };
  }

  function aggregatedGroup(group: string): Json {
    const defs = resources.filter((d) => d.group === group);
    return {
      metadata: group === '' ? { creationTimestamp: null } : { name: group, creationTimestamp: null },
      versions: [
        {
          version: 'v1',
          resources: defs.map((d) => {
            const entry: Json = {
              resource: d.name,
              responseKind: { group: d.group, version: d.version, kind: d.kind },
              scope: d.namespaced ? 'Namespaced' : 'Cluster',
              singularResource: d.singular,
              verbs: d.verbs,
            };
            if (d.shortNames.length > 0) entry['shortNames'] = d.shortNames;
            if (d.categories.length > 0) entry['categories'] = d.categories;
            if (d.subresources.length > 0) {
              entry['subresources'] = d.subresources.map((s) => ({
                subresource: s.name,
                responseKind: { group: '', version: 'v1', kind: s.kind },
                verbs: s.verbs,
              }));
            }
            return entry;
          }),
          freshness: 'Current',
        },
      ],
    };
  }

  function groupInfo(group: string): Json {
    const gv = { groupVersion: `${group}/v1`, version: 'v1' };
    return { name: group, versions: [gv], preferredVersion: gv };
  }

  function discoveryDocument(
    segments: string[],
    accept: string | undefined,
    url: URL,
  ): { body: Json; contentType: string } | 'notAcceptable' | undefined {
    const [root, second, third] = segments;
    const aggregatedVersion = (): 'v2' | 'v2beta1' | 'json' | undefined => {
      const ranges = parseAccept(accept);
      if (ranges.length === 0) return 'json';
      for (const r of ranges) {
        if (!isJsonRange(r.type)) continue;
        if (r.params['g'] === 'apidiscovery.k8s.io' && r.params['as'] === 'APIGroupDiscoveryList') {
          if (aggregatedDiscovery && (r.params['v'] === 'v2' || r.params['v'] === 'v2beta1')) return r.params['v'];
          continue;
        }
        if (r.params['as'] === undefined) return 'json';
      }
      return undefined;
    };
    if (segments.length === 1) {
      const negotiated = aggregatedVersion();
      if (negotiated === undefined) return 'notAcceptable';
      if (negotiated !== 'json') {
        const items = root === 'api' ? [aggregatedGroup('')] : groups.filter((g) => g !== '').map(aggregatedGroup);
        return {
          body: { kind: 'APIGroupDiscoveryList', apiVersion: `apidiscovery.k8s.io/${negotiated}`, metadata: {}, items },
          contentType: `application/json;g=apidiscovery.k8s.io;v=${negotiated};as=APIGroupDiscoveryList`,
        };
      }
      if (root === 'api') {
        return {
          body: {
            kind: 'APIVersions',
            versions: ['v1'],
            serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: url.host === 'sim' ? '127.0.0.1' : url.host }],
          },
          contentType: 'application/json',
        };
      }
      return {
        body: { kind: 'APIGroupList', apiVersion: 'v1', groups: groups.filter((g) => g !== '').map(groupInfo) },
        contentType: 'application/json',
      };
    }
    if (root === 'api' && segments.length === 2 && second === 'v1') return { body: resourceList(''), contentType: 'application/json' };
    if (root === 'apis' && second !== undefined && groups.includes(second) && second !== '') {
      if (segments.length === 2) return { body: { kind: 'APIGroup', apiVersion: 'v1', ...groupInfo(second) }, contentType: 'application/json' };
      if (segments.length === 3 && third === 'v1') return { body: resourceList(second), contentType: 'application/json' };
    }
    return undefined;
  }

  // ---- get / list ----

  function stripType(o: KubeObject): Json {
    const { kind: _kind, apiVersion: _apiVersion, ...rest } = o;
    return rest;
  }

  function partialMetadata(o: KubeObject, version: string): Json {
    return { kind: 'PartialObjectMetadata', apiVersion: `meta.k8s.io/${version}`, metadata: clone(o.metadata) };
  }

  function tableFor(def: ResourceDef, objects: KubeObject[], params: URLSearchParams, version: string, withColumns = true): Json {
    const include = params.get('includeObject') ?? 'Metadata';
    const now = Date.now();
    const rows = objects.map((o) => {
      const row: Json = { cells: def.cells(o, now) };
      const conditions = def.rowConditions?.(o);
      if (conditions !== undefined) row['conditions'] = conditions;
      if (include === 'Object') row['object'] = clone(o);
      else if (include !== 'None') row['object'] = partialMetadata(o, version);
      return row;
    });
    const table: Json = { kind: 'Table', apiVersion: `meta.k8s.io/${version}`, metadata: {} };
    if (withColumns) table['columnDefinitions'] = def.columns;
    table['rows'] = rows;
    return table;
  }

  function serveGet(res: ServerResponse, url: URL, record: RecordedRequest, routed: RoutedResource, accept: string | undefined): void {
    const { def, name } = routed;
    const obj = getObject(def, routed.namespace, name as string);
    const rep = negotiate(accept, false);
    if (rep === undefined) return sendStatus(res, record, notAcceptable());
    if (obj === undefined) return sendStatus(res, record, notFound(def, name as string));
    if (rep.as === 'table') {
      const table = tableFor(def, [obj], url.searchParams, rep.version);
      table['metadata'] = { resourceVersion: obj.metadata.resourceVersion };
      return sendJson(res, record, 200, table, contentTypeOf(rep, false));
    }
    if (rep.as === 'metadata') return sendJson(res, record, 200, partialMetadata(obj, rep.version), contentTypeOf(rep, false));
    return sendJson(res, record, 200, obj);
  }

  interface Filter {
    def: ResourceDef;
    namespace?: string;
    name?: string;
    labels: LabelRequirement[];
    fields: FieldRequirement[];
  }

  function filterOf(routed: RoutedResource, params: URLSearchParams): Filter {
    return {
      def: routed.def,
      namespace: routed.def.namespaced ? routed.namespace : undefined,
      name: routed.name,
      labels: parseLabelSelector(params.get('labelSelector') ?? ''),
      fields: parseFieldSelector(params.get('fieldSelector') ?? '', routed.def),
    };
  }

  function matches(filter: Filter, o: KubeObject): boolean {
    if (filter.namespace !== undefined && o.metadata.namespace !== filter.namespace) return false;
    if (filter.name !== undefined && o.metadata.name !== filter.name) return false;
    return labelsMatch(filter.labels, o.metadata.labels) && fieldsMatch(filter.fields, o);
  }

  function encodeContinue(rv: number, start: string): string {
    return Buffer.from(JSON.stringify({ v: 'meta.k8s.io/v1', rv, start })).toString('base64url');
  }

  function decodeContinue(token: string): { rv: number; start: string } {
    try {
      const parsed = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as Json;
      if (parsed['v'] !== 'meta.k8s.io/v1' || typeof parsed['rv'] !== 'number' || typeof parsed['start'] !== 'string') throw new Error('bad');
      return { rv: parsed['rv'], start: parsed['start'] };
    } catch {
      throw new BadRequest('continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)');
    }
  }

  function serveList(res: ServerResponse, url: URL, record: RecordedRequest, routed: RoutedResource, accept: string | undefined): void {
    const params = url.searchParams;
    const rep = negotiate(accept, true);
    if (rep === undefined) return sendStatus(res, record, notAcceptable());
    const filter = filterOf(routed, params);
    const limitText = params.get('limit');
    const limit = limitText === null ? 0 : Number(limitText);
    if (!Number.isInteger(limit) || limit < 0) throw new BadRequest(`invalid limit: ${limitText}`);
    const continueToken = params.get('continue') ?? '';

    let listRv = store.rv;
    let start = '';
    if (continueToken !== '') {
      const decoded = decodeContinue(continueToken);
      if (decoded.rv < store.compactedRv) {
        return sendStatus(
          res,
          record,
          statusBody(
            410,
            'Expired',
            'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.',
          ),
        );
      }
      listRv = decoded.rv;
      start = decoded.start;
    } else if (params.get('resourceVersionMatch') === 'Exact') {
      const rv = Number(params.get('resourceVersion'));
      if (!Number.isInteger(rv) || rv <= 0) throw new BadRequest('resourceVersionMatch: Forbidden: resourceVersionMatch "exact" is forbidden for resourceVersion "0"');
      if (rv < store.compactedRv) return sendStatus(res, record, statusBody(410, 'Expired', `too old resource version: ${rv} (${store.compactedRv})`));
      listRv = Math.min(rv, store.rv);
    }
    const all = store.stateAt(filter.def, listRv);
    const matching = all.filter(([key, o]) => key >= start && matches(filter, o));
    let page = matching;
    const metadata: Json = { resourceVersion: String(listRv) };
    if (limit > 0 && matching.length > limit) {
      page = matching.slice(0, limit);
      const lastKey = (page[page.length - 1] as [string, KubeObject])[0];
      metadata['continue'] = encodeContinue(listRv, `${lastKey}\u0000`);
      if (filter.labels.length === 0 && filter.fields.length === 0) metadata['remainingItemCount'] = matching.length - limit;
    }
    const objects = page.map(([, o]) => o);
    const contentType = contentTypeOf(rep, true);
    if (rep.as === 'table') {
      const table = tableFor(filter.def, objects, params, rep.version);
      table['metadata'] = metadata;
      return sendJson(res, record, 200, table, contentType);
    }
    if (rep.as === 'metadata') {
      return sendJson(
        res,
        record,
        200,
        {
          kind: 'PartialObjectMetadataList',
          apiVersion: `meta.k8s.io/${rep.version}`,
          metadata,
          items: objects.map((o) => partialMetadata(o, rep.version)),
        },
        contentType,
      );
    }
    return sendJson(res, record, 200, {
      kind: `${filter.def.kind}List`,
      apiVersion: apiVersionOf(filter.def),
      metadata,
      items: objects.map(stripType),
    });
  }

  // ---- watch ----

  function serveWatch(req: IncomingMessage, res: ServerResponse, url: URL, record: RecordedRequest, routed: RoutedResource): void {
    const params = url.searchParams;
    const rep = negotiate(req.headers.accept, false);
    if (rep === undefined) return sendStatus(res, record, notAcceptable());
    const filter = filterOf(routed, params);
    const rvText = params.get('resourceVersion') ?? '';
    const sendInitialEvents = boolParam(params, 'sendInitialEvents');
    const allowBookmarks = boolParam(params, 'allowWatchBookmarks');
    if (sendInitialEvents && !allowBookmarks) {
      throw new BadRequest('allowWatchBookmarks: Forbidden: allowWatchBookmarks must be set to true when sendInitialEvents is set');
    }
    let fromRv: number | undefined;
    if (rvText !== '' && rvText !== '0' && !sendInitialEvents) {
      fromRv = Number(rvText);
      if (!Number.isInteger(fromRv) || fromRv < 0) throw new BadRequest(`resourceVersion: Invalid value: "${rvText}": must be a non-negative integer`);
    }
    const timeoutText = params.get('timeoutSeconds');
    const timeoutSeconds = timeoutText === null ? defaultWatchTimeoutSeconds : Number(timeoutText);
    if (!Number.isInteger(timeoutSeconds) || timeoutSeconds < 0) {
      throw new BadRequest(`timeoutSeconds: Invalid value: "${timeoutText}": must be a non-negative integer`);
    }

    head(res, record, 200, contentTypeOf(rep, false), { 'Transfer-Encoding': 'chunked' });
    res.flushHeaders();
    if (record.method === 'HEAD') return void res.end();

    let ended = false;
    let sentColumns = false;
    const write = (type: string, object: Json) => {
      if (ended) return;
      let payload = object;
      if (rep.as === 'table' && type !== 'ERROR') {
        if (type === 'BOOKMARK') {
          payload = { kind: 'Table', apiVersion: `meta.k8s.io/${rep.version}`, metadata: { resourceVersion: object['metadata'].resourceVersion }, rows: [] };
        } else {
          payload = tableFor(filter.def, [object as KubeObject], params, rep.version, !sentColumns);
          payload['metadata'] = { resourceVersion: object['metadata'].resourceVersion };
          sentColumns = true;
        }
      } else if (rep.as === 'metadata' && type !== 'ERROR' && type !== 'BOOKMARK') {
        payload = partialMetadata(object as KubeObject, rep.version);
      }
      res.write(JSON.stringify({ type, object: payload }) + '\n');
    };
    const bookmark = (annotations?: Record<string, string>) => {
      const metadata: Json = { resourceVersion: String(store.rv), creationTimestamp: null };
      if (annotations !== undefined) metadata['annotations'] = annotations;
      write('BOOKMARK', { kind: filter.def.kind, apiVersion: apiVersionOf(filter.def), metadata });
    };
    const timers: NodeJS.Timeout[] = [];
    const listener = (change: Change) => {
      if (change.def !== filter.def) return;
      const now = matches(filter, change.object);
      if (change.type === 'MODIFIED') {
        const before = change.prev !== undefined && matches(filter, change.prev);
        if (now && before) write('MODIFIED', change.object);
        else if (now) write('ADDED', change.object);
        else if (before) write('DELETED', change.object);
      } else if (now) write(change.type, change.object);
    };
    const end = () => {
      if (ended) return;
      ended = true;
      for (const t of timers) clearTimeout(t);
      store.listeners.delete(listener);
      streams.delete(end);
      watchCount--;
      res.end();
    };
    watchCount++;
    streams.add(end);
    res.once('close', end);

    if (fromRv === undefined) {
      for (const [, o] of store.stateAt(filter.def, store.rv)) if (matches(filter, o)) write('ADDED', o);
      if (sendInitialEvents) bookmark({ 'k8s.io/initial-events-end': 'true' });
    } else if (fromRv < store.compactedRv) {
      write('ERROR', statusBody(410, 'Expired', `too old resource version: ${fromRv} (${store.compactedRv})`));
      return end();
    } else {
      for (const change of store.history) if (change.rv > fromRv) listener(change);
    }
    store.listeners.add(listener);

    if (allowBookmarks) {
      const tick = () => {
        bookmark();
        timers[0] = setTimeout(tick, bookmarkIntervalMs);
      };
      timers[0] = setTimeout(tick, bookmarkIntervalMs);
    }
    if (timeoutSeconds > 0) {
      timers[1] = setTimeout(() => {
        if (allowBookmarks) bookmark();
        end();
      }, timeoutSeconds * 1000);
    }
  }

  // ---- logs ----

  function serveLogs(_req: IncomingMessage, res: ServerResponse, url: URL, record: RecordedRequest, routed: RoutedResource): void {
    const params = url.searchParams;
    const name = routed.name as string;
    const namespace = routed.namespace ?? 'default';
    const pod = getObject(routed.def, namespace, name);
    if (pod === undefined) return sendStatus(res, record, notFound(routed.def, name));
    const names = containersOf(pod);
    let container = params.get('container') ?? undefined;
    if (container === undefined) {
      if (names.length !== 1) {
        throw new BadRequest(`a container name must be specified for pod ${name}, choose one of: [${names.join(' ')}]`);
      }
      container = names[0] as string;
    } else if (!names.includes(container)) {
      throw new BadRequest(`container ${container} is not valid for pod ${name}`);
    }
    if (boolParam(params, 'previous')) throw new BadRequest(`previous terminated container "${container}" in pod "${name}" not found`);
    const cs = ((pod['status']?.containerStatuses ?? []) as Json[]).find((c) => c['name'] === container);
    const waiting = cs?.['state']?.waiting;
    if (pod['status']?.phase === 'Pending' && (cs === undefined || waiting !== undefined)) {
      throw new BadRequest(`container "${container}" in pod "${name}" is waiting to start: ${waiting?.reason ?? 'ContainerCreating'}`);
    }

    const follow = boolParam(params, 'follow');
    const timestamps = boolParam(params, 'timestamps');
    const tailText = params.get('tailLines');
    const tail = tailText === null ? undefined : Number(tailText);
    if (tail !== undefined && (!Number.isInteger(tail) || tail < 0)) throw new BadRequest(`tailLines: Invalid value: ${tailText}`);
    const limitText = params.get('limitBytes');
    const limitBytes = limitText === null ? undefined : Number(limitText);
    if (limitBytes !== undefined && (!Number.isInteger(limitBytes) || limitBytes <= 0)) throw new BadRequest(`limitBytes: Invalid value: ${limitText}`);
    let notBefore = 0;
    const sinceSeconds = params.get('sinceSeconds');
    if (sinceSeconds !== null) notBefore = Date.now() - Number(sinceSeconds) * 1000;
    const sinceTime = params.get('sinceTime');
    if (sinceTime !== null) notBefore = Date.parse(sinceTime);

    const key = `${namespace}/${name}/${container}`;
    let lines = (logs.get(`${namespace}/${name}`)?.get(container) ?? []).filter((l) => l.at.getTime() >= notBefore);
    if (tail !== undefined) lines = tail === 0 ? [] : lines.slice(-tail);

    head(res, record, 200, 'text/plain', { 'Transfer-Encoding': 'chunked' });
    res.flushHeaders();
    if (record.method === 'HEAD') return void res.end();

    let written = 0;
    let ended = false;
    const follower: LogFollower = {
      key,
      write: (line) => {
        if (ended) return;
        let text = `${timestamps ? `${rfc3339Nano(line.at)} ` : ''}${line.text}\n`;
        if (limitBytes !== undefined) {
          const room = limitBytes - written;
          if (Buffer.byteLength(text) >= room) {
            text = Buffer.from(text).subarray(0, room).toString('utf8');
            res.write(text);
            return follower.end();
          }
        }
        written += Buffer.byteLength(text);
        res.write(text);
      },
      end: () => {
        if (ended) return;
        ended = true;
        followers.delete(follower);
        streams.delete(follower.end);
        res.end();
      },
    };
    for (const line of lines) follower.write(line);
    if (!follow || ended) return follower.end();
    followers.add(follower);
    streams.add(follower.end);
    res.once('close', follower.end);
  }

  // ---- start ----

  const server: Server = options.tls
    ? createHttpsServer({ cert: readFileSync(options.tls.certFile), key: readFileSync(options.tls.keyFile) }, handle)
    : createHttpServer(handle);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const url = `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`;

  if (options.seedNamespaces ?? true) {
    for (const name of ['default', 'kube-node-lease', 'kube-public', 'kube-system']) create('namespaces', { metadata: { name } });
  }

  const api: KubeSimApi = {
    create,
    update,
    apply: (resource, obj) => {
      const def = defOf(resource);
      const existing = getObject(def, obj.metadata.namespace, obj.metadata.name ?? '');
      return existing === undefined ? create(resource, obj) : update(resource, obj);
    },
    modify: (resource, namespace, name, mutate) => {
      const def = defOf(resource);
      const existing = getObject(def, namespace, name);
      if (existing === undefined) throw new Error(`${qualifiedResource(def)} "${name}" not found`);
      const copy = clone(existing);
      mutate(copy);
      return update(resource, copy);
    },
    delete: remove,
    get: (resource, namespace, name) => {
      const obj = getObject(defOf(resource), namespace, name);
      return obj === undefined ? undefined : clone(obj);
    },
    list: (resource, namespace) => {
      const def = defOf(resource);
      return store
        .stateAt(def, store.rv)
        .map(([, o]) => o)
        .filter((o) => namespace === undefined || o.metadata.namespace === namespace)
        .map(clone);
    },
    appendLog,
    endLogs: (namespace, pod, container) => {
      const prefix = `${namespace}/${pod}/`;
      for (const f of [...followers]) if (container === undefined ? f.key.startsWith(prefix) : f.key === prefix + container) f.end();
    },
    requests: () => [...recorded],
    resetRequests: () => {
      recorded.length = 0;
    },
    waitForRequest: (match, timeoutMs = 10_000) => {
      const seen = recorded.find(match);
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const waiter = (r: RecordedRequest) => {
          if (!match(r)) return;
          clearTimeout(timer);
          requestWaiters.delete(waiter);
          resolve(r);
        };
        const timer = setTimeout(() => {
          requestWaiters.delete(waiter);
          reject(new Error(`timed out after ${timeoutMs}ms waiting for a request to the Kubernetes simulator`));
        }, timeoutMs);
        requestWaiters.add(waiter);
      });
    },
    resourceVersion: () => String(store.rv),
    compact: (resourceVersion) => store.compact(resourceVersion === undefined ? store.rv : Number(resourceVersion)),
    activeWatches: () => watchCount,
    closeStreams: () => {
      for (const end of [...streams]) end();
    },
    setToken: (t) => {
      token = t;
    },
  };

  return {
    url,
    port,
    api,
    kubeconfig: (o = {}) => {
      const cluster: Json = { server: url };
      if (o.caFile !== undefined) cluster['certificate-authority'] = o.caFile;
      return JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'sim', cluster }],
        users: [{ name: 'sim', user: { token: o.token ?? token } }],
        contexts: [{ name: 'sim', context: { cluster: 'sim', user: 'sim', namespace: o.namespace ?? 'default' } }],
        'current-context': 'sim',
        preferences: {},
      });
    },
    stop: async () => {
      api.closeStreams();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Object builders for tests

export interface PodOptions {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  /** Default Running. Pending pods have containers waiting in ContainerCreating. */
  phase?: 'Pending' | 'Running' | 'Succeeded' | 'Failed' | 'Unknown';
  containers?: string[];
  image?: string;
  nodeName?: string;
  podIP?: string;
  restarts?: number;
  /** Default: true when Running. */
  ready?: boolean;
}

let nextPodIp = 10;

/** A pod shaped like one the kubelet reports on, so the printed columns look real. */
export function makePod(o: PodOptions): KubeObject {
  const podIP = o.podIP ?? `10.244.${Math.trunc(nextPodIp / 250) % 250}.${(nextPodIp++ % 250) + 2}`;
  const phase = o.phase ?? 'Running';
  const ready = o.ready ?? phase === 'Running';
  const containers = o.containers ?? ['app'];
  const image = o.image ?? 'registry.example/app:1.0';
  const started = nowTimestamp();
  const state =
    phase === 'Running'
      ? { running: { startedAt: started } }
      : phase === 'Pending'
        ? { waiting: { reason: 'ContainerCreating' } }
        : { terminated: { exitCode: phase === 'Succeeded' ? 0 : 1, reason: phase === 'Succeeded' ? 'Completed' : 'Error', startedAt: started, finishedAt: started } };
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: o.name, namespace: o.namespace ?? 'default', labels: o.labels ?? {} },
    spec: {
      containers: containers.map((name) => ({ name, image, imagePullPolicy: 'IfNotPresent', resources: {}, terminationMessagePath: '/dev/termination-log', terminationMessagePolicy: 'File' })),
      dnsPolicy: 'ClusterFirst',
      enableServiceLinks: true,
      nodeName: o.nodeName ?? (phase === 'Pending' ? undefined : 'node-1'),
      preemptionPolicy: 'PreemptLowerPriority',
      priority: 0,
      restartPolicy: 'Always',
      schedulerName: 'default-scheduler',
      securityContext: {},
      serviceAccount: 'default',
      serviceAccountName: 'default',
      terminationGracePeriodSeconds: 30,
    },
    status: {
      phase,
      conditions: [
        { type: 'PodScheduled', status: phase === 'Pending' && o.nodeName === undefined ? 'False' : 'True', lastTransitionTime: started },
        { type: 'Initialized', status: 'True', lastTransitionTime: started },
        { type: 'ContainersReady', status: ready ? 'True' : 'False', lastTransitionTime: started },
        { type: 'Ready', status: ready ? 'True' : 'False', lastTransitionTime: started },
      ],
      hostIP: phase === 'Pending' ? undefined : '10.0.0.1',
      podIP: phase === 'Pending' ? undefined : podIP,
      startTime: started,
      qosClass: 'BestEffort',
      containerStatuses: containers.map((name) => ({
        name,
        image,
        imageID: `${image}@sha256:${'0'.repeat(64)}`,
        containerID: phase === 'Pending' ? undefined : `containerd://${randomUUID().replaceAll('-', '')}`,
        ready,
        started: phase === 'Running',
        restartCount: o.restarts ?? 0,
        state,
        lastState: o.restarts ? { terminated: { exitCode: 1, reason: 'Error', startedAt: started, finishedAt: started } } : {},
      })),
    },
  };
}

export interface DeploymentOptions {
  name: string;
  namespace?: string;
  replicas?: number;
  /** Ready replicas; default all. */
  ready?: number;
  labels?: Record<string, string>;
  image?: string;
}

export function makeDeployment(o: DeploymentOptions): KubeObject {
  const replicas = o.replicas ?? 1;
  const ready = o.ready ?? replicas;
  const labels = o.labels ?? { app: o.name };
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: o.name, namespace: o.namespace ?? 'default', labels },
    spec: {
      replicas,
      selector: { matchLabels: labels },
      template: {
        metadata: { labels },
        spec: { containers: [{ name: o.name, image: o.image ?? 'registry.example/app:1.0' }] },
      },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: '25%', maxUnavailable: '25%' } },
      revisionHistoryLimit: 10,
      progressDeadlineSeconds: 600,
    },
    status: {
      observedGeneration: 1,
      replicas,
      updatedReplicas: replicas,
      readyReplicas: ready,
      availableReplicas: ready,
      conditions: [{ type: 'Available', status: ready > 0 ? 'True' : 'False', reason: 'MinimumReplicasAvailable' }],
    },
  };
}

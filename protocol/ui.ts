// The dashboard's socket: socket.io namespace `/ui`, ONE connection per browser tab, the API
// token in the handshake (`auth: { token }`). It carries every live graph, Kubernetes table, log
// follow and the agents list of that tab, each a subscription with an id the client chose.
// One-off reads (discovery, label values for completion, an object's YAML, its events) go over
// the HTTP API with the same token: they do not hold a connection.
//
// kas validates what a browser sends with the zod schemas below; the browser imports only the
// types (`import type`), so zod never reaches the bundle.
//
//   client → kas   `subscribe`   UiSubscription, with an ack: (reply: SubscribeReply) => void
//   client → kas   `unsubscribe` { id }
//   kas → client   `update`      UiUpdate (always names the subscription id)
//
// A bad token is a `connect_error` whose message is `unauthorized` and whose `data.message` says
// why (expired, wrong audience…). A subscription for an agent outside the token's scope is
// refused in its ack with status 403.
import { z } from 'zod';
import { AGENT_ID_PATTERN } from './messages.ts';

export const UI_NAMESPACE = '/ui';
export const UI_SUBSCRIBE = 'subscribe';
export const UI_UNSUBSCRIBE = 'unsubscribe';
export const UI_UPDATE = 'update';

/** Subscriptions one tab may hold at once. */
export const UI_MAX_SUBSCRIPTIONS = 64;

const id = z.string().min(1).max(64);
const agentId = z.string().regex(AGENT_ID_PATTERN);
/** W3C trace context the dashboard generated for the click that opened this subscription. */
const traceparent = z
  .string()
  .regex(/^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/)
  .optional();

export const UiSubscriptionSchema = z.discriminatedUnion('kind', [
  /** Every agent in the token's scope, as `GET /api/v1/agents` answers; again on every change. */
  z.object({ kind: z.literal('agents'), id, traceparent }),
  /**
   * A live graph: exactly the SSE stream of `…/prometheus/live` (snapshot, append, error).
   * `range` and `step` are durations (`5m`, `15s`) or seconds. `after`: the `t` of the last point
   * the tab has (after a reconnect), to get the appends since then instead of a snapshot.
   */
  z.object({
    kind: z.literal('live'),
    id,
    traceparent,
    agentId,
    query: z.string().min(1).max(16 * 1024),
    range: z.string().min(1).max(32),
    step: z.string().min(1).max(32),
    after: z.number().finite().optional(),
  }),
  /**
   * A Kubernetes collection, list then watch: `path` is the collection below the Kubernetes API
   * base, e.g. `/api/v1/namespaces/demo/pods` or `/apis/apps/v1/deployments`. `resourceVersion`:
   * the version the tab last saw (after a reconnect): kas watches from there without a new list,
   * or lists again when the API server answers 410 Gone.
   */
  z.object({
    kind: z.literal('kubernetes'),
    id,
    traceparent,
    agentId,
    path: z.string().startsWith('/').max(1024),
    labelSelector: z.string().max(4096).optional(),
    fieldSelector: z.string().max(4096).optional(),
    resourceVersion: z.string().max(64).optional(),
  }),
  /** A pod's log: the last `tailLines` lines (default 500), then new ones as they are written. */
  z.object({
    kind: z.literal('logs'),
    id,
    traceparent,
    agentId,
    namespace: z.string().min(1).max(253),
    pod: z.string().min(1).max(253),
    container: z.string().max(253).optional(),
    tailLines: z.number().int().min(0).max(100_000).optional(),
    /** RFC 3339 time of the last line the tab has (after a reconnect): lines after it only. */
    sinceTime: z.string().max(64).optional(),
    /**
     * Each line starts with its RFC 3339 time and a space, as Kubernetes writes them with
     * `timestamps=true`: the dashboard needs the last line's time to resume with `sinceTime`.
     */
    timestamps: z.boolean().optional(),
  }),
]);
export type UiSubscription = z.infer<typeof UiSubscriptionSchema>;
export type UiSubscriptionKind = UiSubscription['kind'];

export const UiUnsubscribeSchema = z.object({ id });

/** The ack of `subscribe`: `ok`, or why the subscription was refused (nothing more comes for it). */
export type SubscribeReply =
  | { ok: true; id: string; traceId: string }
  | { ok: false; id: string; status: number; error: string; traceId?: string };

/** What one replica of an agent looks like (as in `GET /api/v1/agents`). */
export interface UiReplica {
  replica: string;
  node: string;
  connectedAt: string;
  version: string;
  capabilities: string[];
}
export interface UiAgent {
  id: string;
  replicas: UiReplica[];
}

/** A Prometheus matrix or vector result entry. */
export interface PromSeries {
  metric: Record<string, string>;
  values: [number, string][];
}
export interface PromSample {
  metric: Record<string, string>;
  value: [number, string];
}

/** A Kubernetes object as JSON (managedFields left out). */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    creationTimestamp?: string;
    deletionTimestamp?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    [key: string]: unknown;
  };
  [key: string]: unknown;
}

export type UiUpdate =
  | { id: string; type: 'agents'; agents: UiAgent[] }
  // ---- live graphs: the same payloads as the SSE stream; `t` is the event id ----
  | { id: string; type: 'snapshot'; t: number; data: { resultType: 'matrix'; result: PromSeries[] } }
  | { id: string; type: 'append'; t: number; data: { t: number; result: PromSample[] } }
  // ---- Kubernetes tables ----
  /**
   * One page of the list (kas lists in pages of 500). `reset`: the first page of a (re)list:
   * drop every row you have. `last`: the list is complete; the watch from `resourceVersion`
   * follows.
   */
  | { id: string; type: 'list'; items: KubeObject[]; resourceVersion: string; reset: boolean; last: boolean }
  /** Watch events in arrival order, batched (at most every 100 ms). BOOKMARKs are folded into `resourceVersion`. */
  | {
      id: string;
      type: 'events';
      events: { type: 'ADDED' | 'MODIFIED' | 'DELETED'; object: KubeObject }[];
      resourceVersion: string;
    }
  // ---- logs ----
  /**
   * Lines of the log, without their line ends, batched; with `timestamps`, each starts with the
   * RFC 3339 time the container wrote it and a space (as `kubectl logs --timestamps`).
   */
  | { id: string; type: 'lines'; lines: string[] }
  /** The log ended (the container stopped, or the follow was cut): resubscribe to follow again. */
  | { id: string; type: 'end' }
  // ---- any kind ----
  /**
   * Something failed. For live graphs, `errorType`/`error` are the Prometheus envelope's and the
   * subscription stays (it retries at the next step) unless `final`. For the others, `status`
   * is the HTTP status kas or the upstream answered, and `final` says the subscription is over.
   * `reconnecting`: the agent went away and kas resumes the subscription when a replica returns.
   */
  | {
      id: string;
      type: 'error';
      t?: number;
      errorType: string;
      error: string;
      status?: number;
      final: boolean;
      reconnecting?: boolean;
    };

export type UiUpdateType = UiUpdate['type'];

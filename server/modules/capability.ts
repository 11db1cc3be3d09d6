// What a capability is to kas's core: a folder under server/modules/ (its server half; its agent
// half is under agent/modules/) that owns its routes below `/api/v1/agents/{id}/<name>/`, its
// allow-list and path rules, its error language, its sharing strategy and its metrics. The edge
// (server/http/) hands it requests and a Reply; the capability reaches agents only through the
// router's one handle, `agents.open`.
import type { Context } from '@opentelemetry/api';
import type { Upstream } from '../../protocol/messages.ts';
import type { UiSubscription, UiUpdate } from '../../protocol/ui.ts';
import type { KasError } from '../routing/errors.ts';
import type { AgentRequest, AgentStream } from '../routing/request.ts';
import type { AgentRouter } from '../routing/router.ts';

/** A caller's request below `/api/v1/agents/{id}/<capability>`, as the edge received it. */
export interface CapabilityRequest {
  agentId: string;
  method: string;
  /** Raw (still percent-encoded) path below the capability's base URL, starting with `/`. */
  rawPath: string;
  /** Raw query string, without `?`. */
  query: string;
  headers: Readonly<Record<string, string | string[] | undefined>>;
  /** The caller's body (POST only), bounded in size by the edge. */
  readBody(): Promise<Buffer | undefined>;
  /** Who asks: the API token's `sub`. */
  sub: string;
  /** KAS_REQUEST_TIMEOUT in milliseconds, the bound on any answer that is not a stream. */
  requestTimeoutMs: number;
  /**
   * Counts this request as one of its caller's open streams (a watch, a followed log) until its
   * answer closes; throws a 429 KasError past KAS_MAX_WATCHES_PER_TOKEN. Absent where streams
   * are counted elsewhere (the private port: the caller's own node counted it).
   */
  holdStream?(): void;
}

/** The caller's answer, as a capability may write it (the edge implements it over HTTP). */
export interface Reply {
  /** Aborted when the caller went away before its answer was complete. */
  readonly signal: AbortSignal;
  /** The caller left before the answer was complete (what aborts `signal`). */
  readonly left: boolean;
  /** The head went out: an error can no longer be answered, only the answer cut. */
  readonly started: boolean;
  /**
   * Passes an agent's answer on: its head, then its body with backpressure; resolves when it is
   * over. `streaming`: flush the head at once (a watch's client must see it before any event).
   */
  pass(stream: AgentStream, streaming: boolean): Promise<void>;
  /** Starts an answer kas composes (a shared watch, a live graph); its head is flushed at once. */
  start(status: number, headers: Readonly<Record<string, string | number | readonly string[]>>, servedBy?: { node: string; replica: string }): void;
  write(chunk: Uint8Array | string): void;
  /** Bytes written that the caller's connection has not taken yet. */
  readonly backlog: number;
  end(): void;
  /** Cuts the answer short: the only honest signal once part of it went out. */
  destroy(error?: Error): void;
  /** Answers with an error in the capability's language, or cuts the answer once it started. */
  fail(error: KasError): void;
  /** Calls `listener` once the caller's connection closed. */
  onClose(listener: () => void): () => void;
}

/** One subscription on the dashboard's socket, as a capability writes to it (the edge implements it). */
export interface UiSink {
  /** True once the tab went away or unsubscribed. */
  readonly gone: boolean;
  onGone(listener: () => void): () => void;
  /** Bytes sent on the tab's socket that it has not taken yet (all its subscriptions together). */
  readonly backlog: number;
  send(update: UiUpdate): void;
  /** The subscription is over: nothing more comes for it. */
  end(): void;
}

/** Serves one dashboard subscription to its sink; resolves when it is over. */
export type UiRun = (sink: UiSink) => Promise<void>;

/** Who subscribes on the dashboard's socket, and the trace context of the click that did. */
export interface UiContext {
  sub: string;
  parent: Context;
}

/** The router's handle, as capabilities see it. */
export type Agents = Pick<AgentRouter, 'open'>;

export interface ServerCapability {
  readonly name: Upstream;
  /**
   * Checks and normalises a request for this capability: the allow-list. Throws a KasError (403
   * and friends) for anything it does not allow. The private port runs it again on the node
   * holding the agent, so a forwarded request is judged by the same rules.
   */
  check(request: CapabilityRequest): Promise<AgentRequest>;
  /**
   * Serves a caller's request (after `check`, or its own routes such as a live graph). May resolve
   * before the answer is over: a stream that lives on is held by its reply, not by this promise.
   */
  serve(request: CapabilityRequest, reply: Reply): Promise<void>;
  /** The body of an error kas itself answers under this capability's URLs: the caller's language. */
  errorBody(error: KasError, traceId: string): unknown;
  /** The dashboard's subscriptions of the kinds this capability serves (`live`, `kubernetes`, `logs`). */
  readonly uiKinds?: readonly UiSubscription['kind'][];
  /**
   * Takes one such subscription: rejects with a KasError when it is refused (nothing is sent
   * then), else resolves with what serves it to the tab until it is over.
   */
  subscribe?(subscription: UiSubscription, ui: UiContext): Promise<UiRun>;
  /** Answers another kas node's question about this capability's shared work (see server/routing/peers.ts). */
  servePeer?(agentId: string, rawPath: string, query: URLSearchParams, reply: Reply): Promise<void>;
}

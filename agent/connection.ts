// agentk's connection to kas: dials out over WebSocket, authenticates with its token, serves
// many requests at once, and reconnects with exponential backoff and jitter, logging each
// state change so an operator can tell "refused" from "unreachable".
import { readFileSync } from 'node:fs';
import { context, propagation, ROOT_CONTEXT, SpanKind, trace } from '@opentelemetry/api';
import type { Logger } from 'pino';
import { failSpan } from '../otel/tracing.ts';
import { io, type Socket } from 'socket.io-client';
import {
  type AgentMessage,
  type KasMessage,
  readKasMessages,
  retryHintMs,
  PROTOCOL_VERSION,
  BATCH_MAX_BYTES,
  BATCH_MAX_MESSAGES,
  BATCH_MAX_ATTACHMENTS,
  FEATURES_EVENT,
  type KasFeatures,
  PACK_MAX_CHUNK_BYTES,
  packMessages,
  TUNNEL_EVENT,
  type Upstream,
} from '../protocol/messages.ts';
import { InflightRequest, type RequestOutcome, type UpstreamExecutor } from './tunnel/serveRequest.ts';

const tracer = trace.getTracer('agentk');

export const BACKOFF_BASE_MS = 500;
export const BACKOFF_MAX_MS = 30_000;

/** Full jitter around an exponentially growing delay, so replicas of a fleet do not reconnect in step. */
export function backoffDelay(attempt: number, random = Math.random): number {
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** attempt);
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

export interface ConnectionOptions {
  kasUrl: string;
  token: string;
  replica: string;
  version: string;
  caFile: string | undefined;
  executors: Partial<Record<Upstream, UpstreamExecutor>>;
  log: Logger;
  onRequestDone?: (upstream: Upstream, outcome: RequestOutcome, seconds: number) => void;
}

/**
 * agentk's connection to kas as the rest of agentk sees it: one link (WebSocket) at a time takes
 * new requests. When kas says its node drains, a new link is opened first (through the same URL,
 * which a load balancer sends to a node that stays) and takes new requests once connected; the
 * old link finishes what it carries and is closed by kas when it is done: make before break.
 */
export class KasConnection {
  #o: ConnectionOptions;
  #current: KasLink;
  #retiring = new Set<KasLink>();
  #stopped = false;
  #reconnects = 0;

  constructor(options: ConnectionOptions) {
    this.#o = options;
    this.#current = this.#link();
  }

  get connected(): boolean {
    return this.#current.connected || [...this.#retiring].some((link) => link.connected);
  }

  get reconnects(): number {
    return this.#reconnects;
  }

  start(): void {
    this.#o.log.info({ kas: this.#o.kasUrl, replica: this.#o.replica }, 'connecting to kas');
    this.#current.connect();
  }

  stop(): void {
    this.#stopped = true;
    this.#current.stop();
    for (const link of this.#retiring) link.stop();
  }

  #link(): KasLink {
    return new KasLink(this.#o, {
      onReconnect: () => this.#reconnects++,
      onDrain: (link) => this.#replace(link),
      onClosed: (link) => this.#retiring.delete(link),
    });
  }

  /** The node of `link` drains: a new link first; `link` retires once the new one is connected. */
  #replace(draining: KasLink): void {
    if (this.#stopped || draining !== this.#current) return;
    const next = this.#link();
    draining.retire();
    this.#retiring.add(draining);
    this.#current = next;
    this.#o.log.info('opening a new connection to kas before the draining one closes');
    next.connect();
  }
}

interface LinkEvents {
  onReconnect: () => void;
  onDrain: (link: KasLink) => void;
  /** A retired link is closed for good. */
  onClosed: (link: KasLink) => void;
}

/** One WebSocket to a kas node, with its own requests in flight and its own reconnects. */
class KasLink {
  #o: ConnectionOptions;
  #events: LinkEvents;
  #socket: Socket;
  /** Retiring: it serves what it carries but never reconnects; kas closes it when it is done. */
  #retiring = false;
  #inflight = new Map<number, InflightRequest>();
  #outbox: AgentMessage[] = [];
  #outboxBytes = 0;
  #outboxAttachments = 0;
  #flushScheduled = false;
  /** The kas at the other end reads packed batches as text (its FEATURES_EVENT said so). */
  #textBatches = false;
  #attempt = 0;
  #retryTimer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(options: ConnectionOptions, events: LinkEvents) {
    this.#o = options;
    this.#events = events;
    const capabilities = Object.keys(options.executors) as Upstream[];
    this.#socket = io(options.kasUrl, {
      // A link of its own, even to the same URL: socket.io would otherwise share one connection.
      forceNew: true,
      transports: ['websocket'],
      reconnection: false, // our own backoff, so every attempt is logged and jittered
      autoConnect: false,
      auth: { token: options.token, replica: options.replica, version: options.version, capabilities, protocol: PROTOCOL_VERSION, batches: true },
      ca: options.caFile ? readFileSync(options.caFile, 'utf8') : undefined,
      timeout: 10_000,
    });
    this.#socket.on('connect', () => {
      this.#attempt = 0;
      this.#textBatches = false; // until this node says otherwise
      options.log.info({ kas: options.kasUrl, capabilities }, 'connected to kas');
    });
    this.#socket.on('connect_error', (error) => {
      const refused = error.message === 'unauthorized';
      const hint = retryHintMs(error.message);
      options.log.warn(
        { kas: options.kasUrl, err: error.message },
        refused ? 'kas refused the agent token (unauthorized); check the token file' : hint !== undefined ? 'kas is taking agents at a limited rate; coming back when it said' : 'could not connect to kas',
      );
      this.#scheduleReconnect(hint);
    });
    this.#socket.on('disconnect', (reason) => {
      for (const request of this.#inflight.values()) request.cancel('connection to kas lost');
      this.#inflight.clear();
      this.#outbox = []; // answers to requests of a connection that is gone
      this.#outboxBytes = 0;
      this.#outboxAttachments = 0;
      if (this.#retiring) {
        options.log.info({ reason }, 'the connection to the draining kas node closed; the new one serves on');
        this.#stopped = true;
        this.#events.onClosed(this);
        return;
      }
      options.log.warn({ reason }, 'disconnected from kas');
      this.#scheduleReconnect();
    });
    this.#socket.on(TUNNEL_EVENT, (raw: unknown) => this.#onEvent(raw));
    this.#socket.on(FEATURES_EVENT, (features: unknown) => {
      this.#textBatches = typeof features === 'object' && features !== null && (features as KasFeatures).textBatches === true;
    });
  }

  get connected(): boolean {
    return this.#socket.connected;
  }

  connect(): void {
    this.#socket.connect();
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#retryTimer);
    this.#socket.disconnect();
  }

  /**
   * Retires this link: it serves what it carries, and no longer reconnects. If it loses its
   * connection before the new link has one, the new link (connecting already) takes over.
   */
  retire(): void {
    this.#retiring = true;
    clearTimeout(this.#retryTimer);
    if (!this.#socket.connected) {
      this.#stopped = true;
      this.#events.onClosed(this);
    }
  }

  /** `hintMs`: when kas said to come back (a refusal for rate): then, with a little jitter, not later. */
  #scheduleReconnect(hintMs?: number): void {
    if (this.#stopped || this.#retryTimer || this.#retiring) return;
    const delay = hintMs === undefined ? backoffDelay(this.#attempt++) : Math.round(hintMs * (1 + Math.random() * 0.1));
    this.#o.log.info({ delay_ms: delay }, `reconnecting in ${(delay / 1000).toFixed(1)} s`);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#events.onReconnect();
      this.#socket.connect();
    }, delay);
  }

  /**
   * Messages go out in batches: whatever the requests produce before the event loop turns (a small
   * answer's head, data and end; one event for each of many watches) leaves as one socket.io
   * event, small chunks packed into one buffer (protocol/messages.ts). A batch full by count, bytes
   * or large chunks leaves at once.
   */
  #send(message: AgentMessage): void {
    if (!this.#socket.connected) return;
    this.#outbox.push(message);
    if (message.type === 'data') {
      this.#outboxBytes += message.chunk.byteLength;
      if (message.chunk.byteLength > PACK_MAX_CHUNK_BYTES) this.#outboxAttachments++;
    }
    if (this.#outbox.length >= BATCH_MAX_MESSAGES || this.#outboxBytes >= BATCH_MAX_BYTES || this.#outboxAttachments >= BATCH_MAX_ATTACHMENTS) {
      this.#flush();
    }
    else if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(() => {
        this.#flushScheduled = false;
        this.#flush();
      });
    }
  }

  #flush(): void {
    const batch = this.#outbox;
    if (batch.length === 0) return;
    this.#outbox = [];
    this.#outboxBytes = 0;
    this.#outboxAttachments = 0;
    if (this.#socket.connected) this.#socket.emit(TUNNEL_EVENT, packMessages(batch, this.#textBatches));
  }

  #onEvent(raw: unknown): void {
    const { messages, issues } = readKasMessages(raw);
    for (const issue of issues) this.#o.log.warn({ issues: issue }, 'ignored a malformed message from kas');
    for (const message of messages) this.#onMessage(message);
  }

  #onMessage(message: KasMessage): void {
    switch (message.type) {
      case 'request':
        return this.#serve(new InflightRequest(message));
      case 'credit':
        return this.#inflight.get(message.id)?.addCredit(message.bytes);
      case 'cancel':
        return this.#inflight.get(message.id)?.cancel(message.reason);
      case 'drain':
        // kas closes this connection once our requests there are done (closing it from this side
        // could lose answers still in flight); a new connection is opened first.
        this.#o.log.info({ in_flight: this.#inflight.size }, 'kas node is draining; it will close this connection when our requests finish');
        this.#events.onDrain(this);
        return;
    }
  }

  /**
   * Runs one tunnelled request as a CONSUMER span, the child of kas's send span (its context
   * comes in the request's traceparent/tracestate); the upstream HTTP call becomes its child.
   * The span ends with the stream: bytes and chunks counted, the first byte as an event.
   */
  #serve(request: InflightRequest): void {
    const { id, upstream, method, path, traceparent, tracestate } = request.request;
    if (this.#inflight.has(id)) return; // kas never reuses an id on one connection
    this.#inflight.set(id, request);
    const started = performance.now();
    const parent = propagation.extract(ROOT_CONTEXT, { traceparent, tracestate });
    const span = tracer.startSpan(
      `process ${upstream}`,
      {
        kind: SpanKind.CONSUMER,
        attributes: {
          'messaging.system': 'socket.io',
          'messaging.operation.type': 'process',
          'messaging.message.id': String(id),
          'kas.agent.replica': this.#o.replica,
          'kas.upstream': upstream,
          'http.request.method': method,
          'url.path': path,
        },
      },
      parent,
    );
    const ctx = trace.setSpan(parent, span);
    let chunks = 0;
    const send = (message: AgentMessage) => {
      if (message.type === 'data' && chunks++ === 0) span.addEvent('first byte');
      else if (message.type === 'head') span.addEvent('head', { 'http.response.status_code': message.status });
      this.#send(message);
    };
    void context
      .with(ctx, () => request.run(this.#o.executors[upstream], send))
      .then((outcome) => {
        this.#inflight.delete(id);
        span.setAttributes({ 'kas.stream.bytes': outcome.bytes, 'kas.stream.chunks': chunks });
        if (outcome.status !== undefined) span.setAttribute('http.response.status_code', outcome.status);
        if (outcome.error === 'cancelled') span.addEvent('cancelled by kas');
        else if (outcome.error) failSpan(span, outcome.error, outcome.message);
        span.end();
        context.with(ctx, () => this.#o.onRequestDone?.(upstream, outcome, (performance.now() - started) / 1000));
      });
  }
}

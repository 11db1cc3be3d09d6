// kas's side of one agent replica's WebSocket: sends requests, and turns the agent's validated
// answers into per-request streams. Many requests share one connection; each has its own credit
// window, so a slow reader slows only its own stream.
import { validateHeaderName, validateHeaderValue } from 'node:http';
import type { Socket } from 'socket.io';
import type { Logger } from 'pino';
import {
  type AgentErrorCode,
  type AgentMessage,
  BATCH_MAX_ATTACHMENTS,
  BATCH_MAX_BYTES,
  BATCH_MAX_MESSAGES,
  CHUNK_MAX_BYTES,
  INITIAL_CREDIT_BYTES,
  type KasMessage,
  readAgentMessages,
  TUNNEL_EVENT,
  type TunnelRequest,
} from '../../protocol/messages.ts';
import { describeRefusal } from '../../protocol/messageSchemas.ts';
import type { DroppedKind, LimitMetrics } from '../../otel/limitMetrics.ts';
import { ChunkQueue } from './chunkQueue.ts';
import { LogThrottle } from './logThrottle.ts';
import type { ReplicaInfo } from './replica.ts';

/**
 * Why a tunnel stream failed. `replica_gone`: the connection closed before the answer was
 * complete; `agent_busy`: the agent serves KAS_AGENT_MAX_INFLIGHT requests through this node already.
 */
export type StreamFailure = AgentErrorCode | 'replica_gone' | 'protocol_violation' | 'agent_busy';

export class TunnelStreamError extends Error {
  override name = 'TunnelStreamError';
  readonly code: StreamFailure;
  constructor(code: StreamFailure, message: string) {
    super(message);
    this.code = code;
  }
}

export type OutgoingRequest = Omit<TunnelRequest, 'type' | 'id' | 'credit'>;

/** One label object per kind, made once: a flood adds to the counter without making any. */
const DROPPED_LABELS: Record<DroppedKind, { kind: DroppedKind }> = {
  malformed: { kind: 'malformed' },
  malformed_batch: { kind: 'malformed_batch' },
  unknown_request: { kind: 'unknown_request' },
  late: { kind: 'late' },
  protocol_violation: { kind: 'protocol_violation' },
};

/** Credit is returned in batches so that small chunks do not each cost a message. */
const CREDIT_BATCH_BYTES = 4 * CHUNK_MAX_BYTES;

export interface TunnelHead {
  status: number;
  headers: Record<string, string | string[]>;
}

/**
 * Checks a response head before any of it reaches the caller's HTTP connection: a header HTTP
 * cannot carry would throw inside Node, a 1xx is no final answer, and a Content-Length the body
 * does not match would desynchronise the caller's keep-alive connection. Returns a violation, or
 * the body length the head announces (undefined when it announces none or there is no body).
 */
function checkHead(
  method: TunnelRequest['method'],
  status: number,
  headers: Record<string, string | string[]>,
): string | { expectedBytes: number | undefined } {
  if (status < 200) return `status ${status} is not a final answer`;
  const lengths = new Set<string>();
  for (const [name, value] of Object.entries(headers)) {
    const values = Array.isArray(value) ? value : [value];
    try {
      validateHeaderName(name);
      for (const v of values) validateHeaderValue(name, v);
    } catch {
      return `header ${JSON.stringify(name.slice(0, 64))} cannot be sent over HTTP`;
    }
    if (name.toLowerCase() === 'content-length') for (const v of values) for (const part of v.split(',')) lengths.add(part.trim());
  }
  if (lengths.size === 0) return { expectedBytes: undefined };
  const [length] = lengths;
  if (lengths.size > 1 || !/^\d{1,15}$/.test(length!)) return 'invalid Content-Length';
  const bodyless = method === 'HEAD' || status === 204 || status === 304;
  return { expectedBytes: bodyless ? undefined : Number(length) };
}

/** What a stream needs of its connection: a way to send kas's messages, and to be forgotten once over. */
export interface StreamSink {
  send(message: KasMessage): void;
  forget(id: number): void;
}

/**
 * One request in flight on a connection, seen from kas. `ready` settles once the answer can be
 * passed on: at its head for a stream (a watch must reach its caller before its first event),
 * else at its first body bytes or its end, so that an agent that breaks the protocol before
 * then fails the request cleanly (an error answer) instead of cutting a half-sent one.
 * After that, the answer arrives through `body`; a failure then fails the body.
 */
export class TunnelStream {
  readonly id: number;
  readonly ready: Promise<TunnelHead>;
  readonly body: ChunkQueue;
  #connection: StreamSink;
  #method: TunnelRequest['method'];
  #readyAtHead: boolean;
  #settleReady!: { resolve: (head: TunnelHead) => void; reject: (error: TunnelStreamError) => void };
  #head: TunnelHead | undefined;
  #isReady = false;
  #credit = INITIAL_CREDIT_BYTES;
  #owed = 0;
  #expectedBytes: number | undefined;
  #done = false;
  bytesReceived = 0;

  constructor(connection: StreamSink, id: number, method: TunnelRequest['method'], readyAtHead: boolean) {
    this.#connection = connection;
    this.id = id;
    this.#method = method;
    this.#readyAtHead = readyAtHead;
    this.ready = new Promise((resolve, reject) => (this.#settleReady = { resolve, reject }));
    this.ready.catch(() => undefined); // a failure is also reported to whoever awaits it
    this.body = new ChunkQueue({
      onConsumed: (bytes) => this.#payBack(bytes),
      onCancel: (reason) => this.cancel(reason),
    });
  }

  get done(): boolean {
    return this.#done;
  }

  /** A stream (watch, follow): ready at its head, and not counted against KAS_AGENT_MAX_INFLIGHT. */
  get readyAtHead(): boolean {
    return this.#readyAtHead;
  }

  /** The reader consumed `bytes`: once a batch is due, the agent may send that many more. */
  #payBack(bytes: number): void {
    if (this.#done) return;
    this.#owed += bytes;
    // The agent still has three quarters of its window when a batch falls due: it never waits on this.
    if (this.#owed < CREDIT_BATCH_BYTES) return;
    this.#credit += this.#owed;
    this.#connection.send({ type: 'credit', id: this.id, bytes: this.#owed });
    this.#owed = 0;
  }

  /** The caller went away or time ran out: tell the agent to abort its upstream request. */
  cancel(reason: string): void {
    if (this.#done) return;
    this.#finish();
    this.#connection.send({ type: 'cancel', id: this.id, reason });
    this.body.cancel(reason);
    this.#settleReady.reject(new TunnelStreamError('internal', `cancelled: ${reason}`));
  }

  #finish(): void {
    this.#done = true;
    this.#connection.forget(this.id);
  }

  fail(error: TunnelStreamError): void {
    if (this.#done) return;
    this.#finish();
    if (this.#isReady) this.body.fail(error);
    else this.#settleReady.reject(error);
  }

  #becomeReady(): void {
    if (this.#isReady) return;
    this.#isReady = true;
    this.#settleReady.resolve(this.#head!);
  }

  /** Returns a protocol violation to report, or undefined when the message was fine. */
  receive(message: AgentMessage): string | undefined {
    switch (message.type) {
      case 'head': {
        if (this.#head) return 'second head';
        const checked = checkHead(this.#method, message.status, message.headers);
        if (typeof checked === 'string') return checked;
        this.#expectedBytes = checked.expectedBytes;
        this.#head = { status: message.status, headers: message.headers };
        if (this.#readyAtHead) this.#becomeReady();
        return undefined;
      }
      case 'data': {
        if (!this.#head) return 'data before head';
        const size = message.chunk.byteLength;
        if (size > CHUNK_MAX_BYTES) return `chunk of ${size} bytes exceeds ${CHUNK_MAX_BYTES}`;
        if (size > this.#credit) return `chunk of ${size} bytes exceeds credit ${this.#credit}`;
        if (this.#expectedBytes !== undefined && this.bytesReceived + size > this.#expectedBytes) {
          return `more bytes than the Content-Length of ${this.#expectedBytes}`;
        }
        this.#credit -= size;
        this.bytesReceived += size;
        this.body.push(message.chunk);
        this.#becomeReady();
        return undefined;
      }
      case 'end':
        if (!this.#head) return 'end before head';
        if (this.#expectedBytes !== undefined && this.bytesReceived !== this.#expectedBytes) {
          return `end after ${this.bytesReceived} of the ${this.#expectedBytes} bytes of its Content-Length`;
        }
        this.#finish();
        this.body.end();
        this.#becomeReady();
        return undefined;
      case 'error':
        this.fail(new TunnelStreamError(message.code, message.message));
        return undefined;
    }
  }
}

/** What routing needs of a connection to an agent replica (tests give their own). */
export interface TunnelConnection {
  readonly info: ReplicaInfo;
  readonly isOpen: boolean;
  /** Told to move (its node drains): it finishes what it carries and takes nothing new. */
  readonly draining: boolean;
  readonly inFlight: number;
  /** `readyAtHead`: the stream is ready at its head (watches), else at its first body bytes. */
  open(request: OutgoingRequest, readyAtHead: boolean): TunnelStream;
  drain(): void;
  disconnect(): void;
}

/**
 * What the connections of one agent on this node share: the requests it serves through them
 * (bounded by KAS_AGENT_MAX_INFLIGHT, watches and follows aside) and the log of what it did wrong,
 * which summarises floods instead of writing a line per message.
 */
export class AgentLoad {
  readonly maxInflight: number;
  readonly complaints: LogThrottle;
  inflight = 0;
  connections = 0;

  constructor(log: Logger, maxInflight: number) {
    this.maxInflight = maxInflight;
    this.complaints = new LogThrottle(log, 'agent messages kas dropped or refused (summary of the interval)');
  }
}

export interface AgentConnectionOptions {
  load: AgentLoad;
  metrics: LimitMetrics;
  /** The agent takes a plain array of messages in one event: send those of one event-loop turn together. */
  batches?: boolean;
}

export class AgentConnection implements TunnelConnection, StreamSink {
  readonly info: ReplicaInfo;
  #socket: Socket;
  #log: Logger;
  #load: AgentLoad;
  #metrics: LimitMetrics;
  #nextId = 1;
  #streams = new Map<number, TunnelStream>();
  #closed = false;
  #draining = false;
  #batches: boolean;
  #outbox: KasMessage[] = [];
  #outboxBytes = 0;
  #outboxAttachments = 0;
  #flushScheduled = false;

  constructor(socket: Socket, info: ReplicaInfo, log: Logger, options: AgentConnectionOptions) {
    this.#socket = socket;
    this.info = info;
    this.#log = log;
    this.#load = options.load;
    this.#metrics = options.metrics;
    this.#batches = options.batches ?? false;
    socket.on(TUNNEL_EVENT, (raw: unknown) => this.#onEvent(raw));
    socket.on('disconnect', (reason) => this.#onClose(reason));
  }

  get isOpen(): boolean {
    return !this.#closed && this.#socket.connected;
  }

  get inFlight(): number {
    return this.#streams.size;
  }

  get draining(): boolean {
    return this.#draining;
  }

  open(request: OutgoingRequest, readyAtHead: boolean): TunnelStream {
    const stream = new TunnelStream(this, this.#nextId++, request.method, readyAtHead);
    if (!this.isOpen) {
      queueMicrotask(() => stream.fail(new TunnelStreamError('replica_gone', 'the agent replica disconnected')));
      return stream;
    }
    const load = this.#load;
    if (!readyAtHead) {
      if (load.inflight >= load.maxInflight) {
        this.#metrics.refusals.add(1, { limit: 'agent_inflight' });
        const message = `is serving ${load.maxInflight} requests through this kas node already (KAS_AGENT_MAX_INFLIGHT)`;
        queueMicrotask(() => stream.fail(new TunnelStreamError('agent_busy', message)));
        return stream;
      }
      load.inflight++;
    }
    this.#streams.set(stream.id, stream);
    this.send({ type: 'request', id: stream.id, credit: INITIAL_CREDIT_BYTES, ...request });
    return stream;
  }

  /**
   * To an agent that takes batches, the messages of one event-loop turn leave as one event (32
   * requests arriving at once cost one WebSocket write and one wake-up of the agent, not 32); a
   * batch full by count, body bytes or attachments leaves at once.
   */
  send(message: KasMessage): void {
    if (this.#closed) return;
    if (!this.#batches) {
      this.#socket.emit(TUNNEL_EVENT, message);
      return;
    }
    this.#outbox.push(message);
    if (message.type === 'request' && message.body) {
      this.#outboxBytes += message.body.byteLength;
      this.#outboxAttachments++;
    }
    if (this.#outbox.length >= BATCH_MAX_MESSAGES || this.#outboxBytes >= BATCH_MAX_BYTES || this.#outboxAttachments >= BATCH_MAX_ATTACHMENTS) {
      this.#flush();
    } else if (!this.#flushScheduled) {
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
    if (!this.#closed) this.#socket.emit(TUNNEL_EVENT, batch.length === 1 ? batch[0] : batch);
  }

  forget(id: number): void {
    const stream = this.#streams.get(id);
    if (!stream) return;
    this.#streams.delete(id);
    if (!stream.readyAtHead) this.#load.inflight--;
  }

  /**
   * Asks the agent to connect to another node (it opens its new connection before this one
   * closes); from now on this connection takes no new requests.
   */
  drain(): void {
    this.#draining = true;
    this.send({ type: 'drain' });
  }

  disconnect(): void {
    this.#flush();
    this.#socket.disconnect(true);
  }

  #onEvent(raw: unknown): void {
    const { messages, refused, batchError } = readAgentMessages(raw);
    if (batchError) this.#drop('malformed_batch', 'warn', () => ({ batch: batchError }), 'refused a malformed message from agent');
    for (const entry of refused) this.#drop('malformed', 'warn', () => ({ issues: describeRefusal(entry) }), 'refused a malformed message from agent');
    for (const message of messages) this.#onMessage(message);
  }

  /**
   * Counts what the agent sent that kas drops, and logs it within the agent's log budget. A flood
   * of them must cost little: `fields` is made only for a line that is logged.
   */
  #drop(kind: DroppedKind, level: 'warn' | 'debug', fields: () => Record<string, unknown>, message: string): void {
    this.#metrics.agentMessagesDropped.add(1, DROPPED_LABELS[kind]);
    this.#load.complaints.note(kind, level, () => ({ ...fields(), replica: this.info.replica }), message);
  }

  #onMessage(message: AgentMessage): void {
    const stream = this.#streams.get(message.id);
    if (!stream) {
      // Late answers to cancelled requests land here too; an id never issued is a rogue agent.
      const never = message.id >= this.#nextId;
      this.#drop(never ? 'unknown_request' : 'late', never ? 'warn' : 'debug', () => ({ requestId: message.id, type: message.type }), 'agent answered a request it was not sent');
      return;
    }
    let violation: string | undefined;
    try {
      violation = stream.receive(message);
    } catch (error) {
      // Whatever an agent sends must not take the node down: relaying it failed, so fail that request.
      violation = `its ${message.type} could not be relayed (${(error as Error).message})`;
    }
    if (violation) {
      // One line each: a violation fails a request kas sent, so there are never more of them than requests.
      this.#metrics.agentMessagesDropped.add(1, DROPPED_LABELS.protocol_violation);
      this.#log.warn({ agent_id: this.info.agentId, replica: this.info.replica, requestId: message.id, violation }, 'agent broke the tunnel protocol; failing that request');
      stream.fail(new TunnelStreamError('protocol_violation', `the agent broke the tunnel protocol: ${violation}`));
      this.send({ type: 'cancel', id: stream.id, reason: 'protocol violation' });
    }
  }

  #onClose(reason: string): void {
    this.#closed = true;
    this.#outbox = [];
    for (const stream of [...this.#streams.values()]) {
      stream.fail(new TunnelStreamError('replica_gone', `the agent replica disconnected (${reason})`));
    }
  }
}

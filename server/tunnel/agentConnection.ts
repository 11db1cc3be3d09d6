// kas's side of one agent replica's WebSocket: sends requests, and turns the agent's validated
// answers into per-request streams. Many requests share one connection; each has its own credit
// window, so a slow caller slows only its own stream.
import { EventEmitter } from 'node:events';
import { validateHeaderName, validateHeaderValue } from 'node:http';
import type { Socket } from 'socket.io';
import type { Logger } from 'pino';
import {
  type AgentErrorCode,
  type AgentMessage,
  AgentMessageSchema,
  CHUNK_MAX_BYTES,
  INITIAL_CREDIT_BYTES,
  type KasMessage,
  TUNNEL_EVENT,
  unpackMessages,
  type TunnelRequest,
} from '../../protocol/messages.ts';
import type { ReplicaInfo } from '../routing/registry.ts';

/** Why a tunnel stream failed. `replica_gone`: the connection closed before the answer was complete. */
export type StreamFailure = AgentErrorCode | 'replica_gone' | 'protocol_violation';

export class TunnelStreamError extends Error {
  override name = 'TunnelStreamError';
  readonly code: StreamFailure;
  constructor(code: StreamFailure, message: string) {
    super(message);
    this.code = code;
  }
}

export type OutgoingRequest = Omit<TunnelRequest, 'type' | 'id' | 'credit'>;

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

interface StreamEvents {
  head: [status: number, headers: Record<string, string | string[]>];
  data: [chunk: Uint8Array];
  end: [];
  error: [error: TunnelStreamError];
}

/** One request in flight on a connection, seen from kas. */
export class TunnelStream extends EventEmitter<StreamEvents> {
  readonly id: number;
  #connection: AgentConnection;
  #method: TunnelRequest['method'];
  #credit = INITIAL_CREDIT_BYTES;
  #headSeen = false;
  #expectedBytes: number | undefined;
  #done = false;
  bytesReceived = 0;

  constructor(connection: AgentConnection, id: number, method: TunnelRequest['method']) {
    super();
    this.#connection = connection;
    this.id = id;
    this.#method = method;
  }

  get done(): boolean {
    return this.#done;
  }

  /** The caller consumed `bytes`: the agent may send that many more. */
  grantCredit(bytes: number): void {
    if (this.#done || bytes <= 0) return;
    this.#credit += bytes;
    this.#connection.send({ type: 'credit', id: this.id, bytes });
  }

  /** The caller went away or time ran out: tell the agent to abort its upstream request. */
  cancel(reason: string): void {
    if (this.#done) return;
    this.#finish();
    this.#connection.send({ type: 'cancel', id: this.id, reason });
  }

  #finish(): void {
    this.#done = true;
    this.#connection.forget(this.id);
  }

  fail(error: TunnelStreamError): void {
    if (this.#done) return;
    this.#finish();
    this.emit('error', error);
  }

  /** Returns a protocol violation to report, or undefined when the message was fine. */
  receive(message: AgentMessage): string | undefined {
    switch (message.type) {
      case 'head': {
        if (this.#headSeen) return 'second head';
        const checked = checkHead(this.#method, message.status, message.headers);
        if (typeof checked === 'string') return checked;
        this.#expectedBytes = checked.expectedBytes;
        this.#headSeen = true;
        this.emit('head', message.status, message.headers);
        return undefined;
      }
      case 'data': {
        if (!this.#headSeen) return 'data before head';
        const size = message.chunk.byteLength;
        if (size > CHUNK_MAX_BYTES) return `chunk of ${size} bytes exceeds ${CHUNK_MAX_BYTES}`;
        if (size > this.#credit) return `chunk of ${size} bytes exceeds credit ${this.#credit}`;
        if (this.#expectedBytes !== undefined && this.bytesReceived + size > this.#expectedBytes) {
          return `more bytes than the Content-Length of ${this.#expectedBytes}`;
        }
        this.#credit -= size;
        this.bytesReceived += size;
        this.emit('data', message.chunk);
        return undefined;
      }
      case 'end':
        if (!this.#headSeen) return 'end before head';
        if (this.#expectedBytes !== undefined && this.bytesReceived !== this.#expectedBytes) {
          return `end after ${this.bytesReceived} of the ${this.#expectedBytes} bytes of its Content-Length`;
        }
        this.#finish();
        this.emit('end');
        return undefined;
      case 'error':
        this.fail(new TunnelStreamError(message.code, message.message));
        return undefined;
    }
  }
}

export class AgentConnection {
  readonly info: ReplicaInfo;
  #socket: Socket;
  #log: Logger;
  #nextId = 1;
  #streams = new Map<number, TunnelStream>();
  #closed = false;
  bytesIn = 0;
  bytesOut = 0;

  constructor(socket: Socket, info: ReplicaInfo, log: Logger) {
    this.#socket = socket;
    this.info = info;
    this.#log = log;
    socket.on(TUNNEL_EVENT, (raw: unknown) => this.#onEvent(raw));
    socket.on('disconnect', (reason) => this.#onClose(reason));
  }

  get isOpen(): boolean {
    return !this.#closed && this.#socket.connected;
  }

  get inFlight(): number {
    return this.#streams.size;
  }

  open(request: OutgoingRequest): TunnelStream {
    const stream = new TunnelStream(this, this.#nextId++, request.method);
    if (!this.isOpen) {
      queueMicrotask(() => stream.fail(new TunnelStreamError('replica_gone', 'the agent replica disconnected')));
      return stream;
    }
    this.#streams.set(stream.id, stream);
    this.send({ type: 'request', id: stream.id, credit: INITIAL_CREDIT_BYTES, ...request });
    return stream;
  }

  send(message: KasMessage): void {
    if (this.#closed) return;
    if (message.type === 'request' && message.body) this.bytesOut += message.body.byteLength;
    this.#socket.emit(TUNNEL_EVENT, message);
  }

  forget(id: number): void {
    this.#streams.delete(id);
  }

  /** Asks the agent to reconnect (to another node) once its in-flight requests are done. */
  drain(): void {
    this.send({ type: 'drain' });
  }

  disconnect(): void {
    this.#socket.disconnect(true);
  }

  #onEvent(raw: unknown): void {
    const { messages, error } = unpackMessages(raw);
    if (error) {
      this.#log.warn({ batch: error }, 'refused a malformed message from agent');
      return;
    }
    for (const message of messages) this.#onMessage(message);
  }

  #onMessage(raw: unknown): void {
    const parsed = AgentMessageSchema.safeParse(raw);
    if (!parsed.success) {
      this.#log.warn({ issues: parsed.error.issues.slice(0, 3) }, 'refused a malformed message from agent');
      return;
    }
    const message = parsed.data;
    const stream = this.#streams.get(message.id);
    if (!stream) {
      // Late answers to cancelled requests land here too; an id never issued is a rogue agent.
      const level = message.id >= this.#nextId ? 'warn' : 'debug';
      this.#log[level]({ requestId: message.id, type: message.type }, 'agent answered a request it was not sent');
      return;
    }
    if (message.type === 'data') this.bytesIn += message.chunk.byteLength;
    let violation: string | undefined;
    try {
      violation = stream.receive(message);
    } catch (error) {
      // Whatever an agent sends must not take the node down: relaying it failed, so fail that request.
      violation = `its ${message.type} could not be relayed (${(error as Error).message})`;
    }
    if (violation) {
      this.#log.warn({ requestId: message.id, violation }, 'agent broke the tunnel protocol; failing that request');
      stream.fail(new TunnelStreamError('protocol_violation', `the agent broke the tunnel protocol: ${violation}`));
      this.send({ type: 'cancel', id: stream.id, reason: 'protocol violation' });
    }
  }

  #onClose(reason: string): void {
    this.#closed = true;
    for (const stream of [...this.#streams.values()]) {
      stream.fail(new TunnelStreamError('replica_gone', `the agent replica disconnected (${reason})`));
    }
  }
}

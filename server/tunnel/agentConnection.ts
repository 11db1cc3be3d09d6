// kas's side of one agent replica's WebSocket: sends requests, and turns the agent's validated
// answers into per-request streams. Many requests share one connection; each has its own credit
// window, so a slow caller slows only its own stream.
import { EventEmitter } from 'node:events';
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
  #credit = INITIAL_CREDIT_BYTES;
  #headSeen = false;
  #done = false;
  bytesReceived = 0;

  constructor(connection: AgentConnection, id: number) {
    super();
    this.#connection = connection;
    this.id = id;
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
      case 'head':
        if (this.#headSeen) return 'second head';
        this.#headSeen = true;
        this.emit('head', message.status, message.headers);
        return undefined;
      case 'data': {
        if (!this.#headSeen) return 'data before head';
        const size = message.chunk.byteLength;
        if (size > CHUNK_MAX_BYTES) return `chunk of ${size} bytes exceeds ${CHUNK_MAX_BYTES}`;
        if (size > this.#credit) return `chunk of ${size} bytes exceeds credit ${this.#credit}`;
        this.#credit -= size;
        this.bytesReceived += size;
        this.emit('data', message.chunk);
        return undefined;
      }
      case 'end':
        if (!this.#headSeen) return 'end before head';
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
    socket.on(TUNNEL_EVENT, (raw: unknown) => this.#onMessage(raw));
    socket.on('disconnect', (reason) => this.#onClose(reason));
  }

  get isOpen(): boolean {
    return !this.#closed && this.#socket.connected;
  }

  get inFlight(): number {
    return this.#streams.size;
  }

  open(request: OutgoingRequest): TunnelStream {
    const stream = new TunnelStream(this, this.#nextId++);
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
    const violation = stream.receive(message);
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

// The tab's ONE socket.io connection to kas's `/ui` namespace, WebSocket only. Every graph, table,
// log follow and the agents list is a subscription on it. After a lost connection socket.io
// reconnects by itself; every subscription is then sent again, built afresh so it carries where
// it left off (`after`, `resourceVersion`, `sinceTime`).
import { io, type Socket } from 'socket.io-client';
import type { SubscribeReply, UiSubscription, UiUpdate } from '../../protocol/ui.ts';

// The values of protocol/ui.ts's constants; importing them would bring zod into the bundle.
const UI_NAMESPACE = '/ui';
const UI_SUBSCRIBE = 'subscribe';
const UI_UNSUBSCRIBE = 'unsubscribe';
const UI_UPDATE = 'update';
const ACK_TIMEOUT_MS = 15_000;

type Distribute<T> = T extends unknown ? Omit<T, 'id'> : never;
export type SubscriptionRequest = Distribute<UiSubscription>;

export interface Subscriber {
  /** The subscription as it should be sent now (called again on every reconnect). */
  request(): SubscriptionRequest;
  update(u: UiUpdate): void;
  /** The ack: accepted (with kas's trace id) or refused. */
  reply(r: SubscribeReply): void;
}

export type ConnectionState =
  | { state: 'connecting' }
  | { state: 'connected' }
  | { state: 'lost'; reason: string }
  | { state: 'unauthorized'; message: string };

export class UiConnection {
  readonly socket: Socket;
  readonly #subs = new Map<string, Subscriber>();
  #next = 0;
  #state: ConnectionState = { state: 'connecting' };
  #retryMs = 0;
  #closed = false;
  readonly #onState: (s: ConnectionState) => void;

  constructor(token: string, onState: (s: ConnectionState) => void) {
    this.#onState = onState;
    this.socket = io(`${location.origin}${UI_NAMESPACE}`, {
      transports: ['websocket'],
      auth: { token },
      reconnectionDelay: 500,
      reconnectionDelayMax: 5_000,
    });
    this.socket.on('connect', () => {
      this.#retryMs = 0;
      this.#set({ state: 'connected' });
      for (const [id, sub] of this.#subs) this.#send(id, sub);
    });
    this.socket.on('connect_error', (err: Error & { data?: { message?: string } }) => {
      if (err.message === 'unauthorized') {
        // kas refused the token: retrying cannot help, the operator needs another one.
        this.socket.disconnect();
        this.#set({ state: 'unauthorized', message: err.data?.message ?? 'kas refused the API token' });
        return;
      }
      this.#set({ state: 'lost', reason: err.message });
      // socket.io retries a failed transport itself, but not a refusal by kas's namespace
      // (a node restarting, the namespace not served yet): retry that with a growing pause.
      if (!this.socket.active) {
        this.#retryMs = Math.min(this.#retryMs * 2 || 500, 10_000);
        setTimeout(() => !this.#closed && this.#state.state === 'lost' && this.socket.connect(), this.#retryMs);
      }
    });
    this.socket.on('disconnect', (reason) => {
      if (this.#state.state === 'unauthorized' || reason === 'io client disconnect') return;
      this.#set({ state: 'lost', reason });
      // kas closed the socket itself (a drain, a restart): socket.io leaves reconnecting to us.
      if (reason === 'io server disconnect') setTimeout(() => !this.#closed && this.socket.connect(), 500);
    });
    this.socket.on(UI_UPDATE, (u: UiUpdate) => this.#subs.get(u.id)?.update(u));
  }

  get state(): ConnectionState {
    return this.#state;
  }

  #set(s: ConnectionState): void {
    this.#state = s;
    this.#onState(s);
  }

  #send(id: string, sub: Subscriber): void {
    const message = { ...sub.request(), id } as UiSubscription;
    this.socket.timeout(ACK_TIMEOUT_MS).emit(UI_SUBSCRIBE, message, (err: Error | null, reply: SubscribeReply) => {
      if (!this.#subs.has(id)) return;
      if (err) {
        // No ack: the connection went away (the subscription is sent again on reconnect) or kas is stuck.
        if (this.socket.connected) sub.reply({ ok: false, id, status: 504, error: `kas did not answer the subscription within ${ACK_TIMEOUT_MS / 1000}s` });
        return;
      }
      sub.reply(reply);
    });
  }

  /** Starts a subscription; the returned function ends it. */
  subscribe(sub: Subscriber): () => void {
    const id = `s${++this.#next}`;
    this.#subs.set(id, sub);
    if (this.socket.connected) this.#send(id, sub);
    return () => {
      if (!this.#subs.delete(id)) return;
      if (this.socket.connected) this.socket.emit(UI_UNSUBSCRIBE, { id });
    };
  }

  close(): void {
    this.#closed = true;
    this.#subs.clear();
    this.socket.disconnect();
  }
}

// A rogue agent for the corpus: a socket.io client with a registered agent's valid token that
// answers each request with the script of the case it belongs to (the case is named in the
// request's query, `case=<n>`), however wrong that script is.
import { io, type Socket } from 'socket.io-client';
import { type KasMessage, PROTOCOL_VERSION, TUNNEL_EVENT, type TunnelRequest } from '../../protocol/messages.ts';
import type { RogueStep } from './corpus/case.ts';

export class RogueAgent {
  readonly socket: Socket;
  readonly replica: string;
  readonly scripts = new Map<string, readonly RogueStep[]>();
  /** Requests seen, by case tag. */
  readonly requests = new Map<string, TunnelRequest>();
  readonly cancels = new Map<number, string>();

  private constructor(socket: Socket, replica: string) {
    this.socket = socket;
    this.replica = replica;
    socket.on(TUNNEL_EVENT, (message: KasMessage) => {
      if (message.type === 'cancel') this.cancels.set(message.id, message.reason);
      if (message.type !== 'request') return;
      const tag = new URLSearchParams(message.query).get('case');
      const script = tag === null ? undefined : this.scripts.get(tag);
      if (tag === null || !script) return;
      this.requests.set(tag, message);
      void this.#play(message.id, script);
    });
  }

  static connect(url: string, token: string, replica: string): Promise<RogueAgent> {
    const socket = io(url, {
      transports: ['websocket'],
      reconnection: false,
      forceNew: true,
      auth: { token, replica, version: 'rogue', capabilities: ['prometheus', 'kubernetes'], protocol: PROTOCOL_VERSION },
    });
    return new Promise((resolve, reject) => {
      socket.once('connect', () => resolve(new RogueAgent(socket, replica)));
      socket.once('connect_error', reject);
    });
  }

  send(message: unknown): void {
    this.socket.emit(TUNNEL_EVENT, message);
  }

  async #play(id: number, script: readonly RogueStep[]): Promise<void> {
    for (const step of script) {
      if (step === 'end') this.send({ type: 'end', id });
      else if ('waitMs' in step) await new Promise((r) => setTimeout(r, step.waitMs));
      else if ('head' in step) this.send({ type: 'head', id, status: step.head, headers: step.headers ?? { 'content-type': 'application/json' } });
      else if ('data' in step) this.send({ type: 'data', id, chunk: Buffer.from(step.data) });
      else if ('dataBytes' in step) this.send({ type: 'data', id, chunk: Buffer.alloc(step.dataBytes, 'x') });
      else if ('error' in step) this.send({ type: 'error', id, code: step.error, message: step.message ?? `the rogue says ${step.error}` });
      else this.send({ ...step.message, id });
    }
  }

  close(): void {
    this.socket.close();
  }
}

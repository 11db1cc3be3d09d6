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
      if (typeof step === 'object' && 'waitMs' in step) await new Promise((r) => setTimeout(r, step.waitMs));
      // Several messages as one event, so that kas reads them in one go (as it does when they
      // arrive in one TCP segment).
      else if (typeof step === 'object' && 'together' in step) this.send(step.together.map((s) => messageOf(id, s)));
      else this.send(messageOf(id, step));
    }
  }

  close(): void {
    this.socket.close();
  }
}

/** The tunnel message a step sends. */
function messageOf(id: number, step: Exclude<RogueStep, { waitMs: number } | { together: unknown }>): Record<string, unknown> {
  if (step === 'end') return { type: 'end', id };
  if ('head' in step) return { type: 'head', id, status: step.head, headers: step.headers ?? { 'content-type': 'application/json' } };
  if ('data' in step) return { type: 'data', id, chunk: Buffer.from(step.data) };
  if ('dataBytes' in step) return { type: 'data', id, chunk: Buffer.alloc(step.dataBytes, 'x') };
  if ('error' in step) return { type: 'error', id, code: step.error, message: step.message ?? `the rogue says ${step.error}` };
  return { ...step.message, id };
}

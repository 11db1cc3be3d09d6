// A server-sent events client for tests: what an EventSource sees, event by event, over a plain
// HTTP connection (so that hundreds of them cost the test process little).
import http from 'node:http';

export interface SseEvent {
  id: string | undefined;
  event: string;
  data: string;
  /** When it arrived (Date.now()). */
  at: number;
}

export class SseClient {
  readonly events: SseEvent[] = [];
  /** Comment lines (`: heartbeat`) received. */
  comments = 0;
  status = 0;
  headers: http.IncomingHttpHeaders = {};
  ended = false;
  #request: http.ClientRequest | undefined;
  #waiters = new Set<() => void>();
  #buffer = '';
  #lastId: string | undefined;

  /** Connects to `url` with the bearer token; `lastEventId` resumes as an EventSource would. */
  static open(url: string, token: string, lastEventId?: string): Promise<SseClient> {
    const client = new SseClient();
    return new Promise((resolve, reject) => {
      const headers: Record<string, string> = { authorization: `Bearer ${token}`, accept: 'text/event-stream' };
      if (lastEventId !== undefined) headers['last-event-id'] = lastEventId;
      const request = http.get(url, { headers, agent: false }, (res) => {
        client.status = res.statusCode ?? 0;
        client.headers = res.headers;
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => client.#take(chunk));
        res.on('end', () => client.#end());
        res.on('error', () => client.#end());
        resolve(client);
      });
      request.on('error', (error) => (client.status === 0 ? reject(error) : client.#end()));
      client.#request = request;
    });
  }

  /** The body, for answers that are not a stream (errors). */
  text(): string {
    return this.#buffer;
  }

  get lastEventId(): string | undefined {
    return this.#lastId;
  }

  /** Events of a type, their data parsed as JSON. */
  of<T>(type: string): { id: string | undefined; data: T; at: number }[] {
    return this.events.filter((e) => e.event === type).map((e) => ({ id: e.id, data: JSON.parse(e.data) as T, at: e.at }));
  }

  /** Resolves once `predicate` holds (checked on every event), or rejects after `timeoutMs`. */
  waitFor(predicate: (client: SseClient) => boolean, timeoutMs: number, what: string): Promise<void> {
    if (predicate(this)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!predicate(this)) return;
        clearTimeout(timer);
        this.#waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(check);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; events: ${this.events.map((e) => `${e.event}@${e.id}`).join(' ')}`));
      }, timeoutMs);
      this.#waiters.add(check);
    });
  }

  close(): void {
    this.#request?.destroy();
    this.ended = true;
  }

  #take(chunk: string): void {
    if (this.status !== 200 || !String(this.headers['content-type'] ?? '').startsWith('text/event-stream')) {
      this.#buffer += chunk;
      return;
    }
    this.#buffer += chunk;
    let end: number;
    while ((end = this.#buffer.indexOf('\n\n')) >= 0) {
      const block = this.#buffer.slice(0, end);
      this.#buffer = this.#buffer.slice(end + 2);
      let id: string | undefined;
      let event = 'message';
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) {
          this.comments++;
          continue;
        }
        if (line === '') continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'id') id = value;
        else if (field === 'event') event = value;
        else if (field === 'data') data.push(value);
      }
      if (data.length === 0) continue; // a comment (heartbeat) or `retry:`
      if (id !== undefined) this.#lastId = id;
      this.events.push({ id, event, data: data.join('\n'), at: Date.now() });
    }
    for (const waiter of [...this.#waiters]) waiter();
  }

  #end(): void {
    this.ended = true;
    for (const waiter of [...this.#waiters]) waiter();
  }
}

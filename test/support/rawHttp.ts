// Plain node:http requests for tests that must see the bytes on the wire (fetch decompresses
// gzip on its own) or control how fast a response is read.
import http from 'node:http';
import type { ClientRequest, IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders } from 'node:http';

export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export interface RawRequestOptions {
  method?: string;
  headers?: OutgoingHttpHeaders;
  body?: string | Buffer;
}

/** Sends one request without connection reuse and reads the whole answer, undecoded. */
export async function rawRequest(url: string, options: RawRequestOptions = {}): Promise<RawResponse> {
  const { req, res } = await openResponse(url, options);
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of res) chunks.push(chunk as Buffer);
  } finally {
    req.destroy();
  }
  return { status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) };
}

/** Sends a request and resolves once the response head has arrived; the body is left unread. */
export async function openResponse(url: string, options: RawRequestOptions = {}): Promise<{ req: ClientRequest; res: IncomingMessage }> {
  const { req, response } = startRequest(url, options);
  return { req, res: await response };
}

/** Sends a request and hands back the request at once, e.g. to abandon it before any answer. */
export function startRequest(url: string, options: RawRequestOptions = {}): { req: ClientRequest; response: Promise<IncomingMessage> } {
  const req = http.request(url, { method: options.method ?? 'GET', headers: options.headers, agent: false });
  const response = new Promise<IncomingMessage>((resolve, reject) => {
    req.once('error', reject);
    req.once('response', resolve);
  });
  req.end(options.body);
  return { req, response };
}

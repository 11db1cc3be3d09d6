// The agent half of the Prometheus capability: sends the request kas already checked to the
// cluster's Prometheus and hands back its answer as a stream, status and headers untouched.
import http from 'node:http';
import https from 'node:https';
import { urlToHttpOptions } from 'node:url';
import { startClientSpan } from '../../../otel/http.ts';
import type { TunnelRequest } from '../../../protocol/messages.ts';
import type { UpstreamExecutor, UpstreamResponse } from '../../tunnel/serveRequest.ts';
import type { AgentCapability } from '../index.ts';

const keepAlive = {
  http: new http.Agent({ keepAlive: true, maxSockets: 256 }),
  https: new https.Agent({ keepAlive: true, maxSockets: 256 }),
};

/**
 * The URL of each request under `baseUrl` (which may carry a path prefix): the request's path
 * after the prefix and its query, as the URL setters make them. Parsed once from a string where
 * that reads the same (no `?` or `#` in the path, no `#` in the query, which the setters would
 * percent-encode; a whole URL also loses trailing spaces and control characters, which the
 * setters keep, and the search setter drops a leading `?`): three parses per request cost agentk
 * about 2% of its CPU. test/agent/upstream-url.test.ts holds the two ways equal.
 */
export function upstreamUrls(baseUrl: string): (path: string, query: string) => URL {
  const base = new URL(baseUrl);
  const prefix = base.pathname.replace(/\/+$/, '');
  const bare = new URL(base);
  bare.pathname = '/';
  bare.search = '';
  bare.hash = '';
  const root = bare.href.slice(0, -1) + prefix; // scheme, credentials, host, port and prefix
  return (path, query) => {
    const last = (query || path).charCodeAt((query || path).length - 1);
    if (!/[?#]/.test(path) && !query.includes('#') && !query.startsWith('?') && last > 0x20) return new URL(`${root}${path}${query ? `?${query}` : ''}`);
    const url = new URL(base);
    url.pathname = prefix + path;
    url.search = query;
    return url;
  };
}

/** Sends a tunnelled request to `baseUrl` (which may carry a path prefix) and streams the answer. */
export function httpUpstream(baseUrl: string, extraHeaders: () => Record<string, string> = () => ({})): UpstreamExecutor {
  const base = new URL(baseUrl);
  const urlOf = upstreamUrls(baseUrl);
  const secure = base.protocol === 'https:';
  // Where every request goes, taken from the URL once (http.request would do it for each one).
  const { protocol, hostname, port, auth } = urlToHttpOptions(base);
  const server = { protocol, hostname, port, ...(auth ? { auth } : {}) };
  return (request: TunnelRequest, signal: AbortSignal) =>
    new Promise<UpstreamResponse>((resolve, reject) => {
      const url = urlOf(request.path, request.query);
      const span = startClientSpan(request.method, url);
      const headers: http.OutgoingHttpHeaders = { ...request.headers, ...extraHeaders(), ...span.headers };
      if (request.body) headers['content-length'] = String(request.body.byteLength);
      const outgoing = (secure ? https : http).request({
        ...server,
        path: url.pathname + url.search,
        method: request.method,
        headers,
        agent: secure ? keepAlive.https : keepAlive.http,
        signal,
      });
      outgoing.on('response', (incoming) => {
        span.answered(incoming.statusCode ?? 0);
        incoming.once('close', () => span.end());
        const responseHeaders: Record<string, string | string[]> = {};
        for (const [name, value] of Object.entries(incoming.headers)) if (value !== undefined) responseHeaders[name] = value;
        resolve({ status: incoming.statusCode ?? 502, headers: responseHeaders, body: incoming });
      });
      outgoing.on('error', (error) => {
        span.failed(error);
        span.end();
        reject(error);
      });
      outgoing.end(request.body);
    });
}

export const prometheusExecutor: AgentCapability = async ({ file, log }) => {
  if (!file.prometheus) {
    log.info('no prometheus.url in the agent config: the prometheus capability is off');
    return undefined;
  }
  return httpUpstream(file.prometheus.url);
};

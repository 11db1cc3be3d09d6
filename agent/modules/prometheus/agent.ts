// The agent half of the Prometheus capability: sends the request kas already checked to the
// cluster's Prometheus and hands back its answer as a stream, status and headers untouched.
import http from 'node:http';
import https from 'node:https';
import { startClientSpan } from '../../../otel/http.ts';
import type { TunnelRequest } from '../../../protocol/messages.ts';
import type { UpstreamExecutor, UpstreamResponse } from '../../tunnel/serveRequest.ts';
import type { AgentCapability } from '../index.ts';

const keepAlive = {
  http: new http.Agent({ keepAlive: true, maxSockets: 256 }),
  https: new https.Agent({ keepAlive: true, maxSockets: 256 }),
};

/** Sends a tunnelled request to `baseUrl` (which may carry a path prefix) and streams the answer. */
export function httpUpstream(baseUrl: string, extraHeaders: () => Record<string, string> = () => ({})): UpstreamExecutor {
  const base = new URL(baseUrl);
  const prefix = base.pathname.replace(/\/+$/, '');
  const secure = base.protocol === 'https:';
  return (request: TunnelRequest, signal: AbortSignal) =>
    new Promise<UpstreamResponse>((resolve, reject) => {
      const url = new URL(base);
      url.pathname = prefix + request.path;
      url.search = request.query;
      const span = startClientSpan(request.method, url);
      const headers: http.OutgoingHttpHeaders = { ...request.headers, ...extraHeaders(), ...span.headers };
      if (request.body) headers['content-length'] = String(request.body.byteLength);
      const outgoing = (secure ? https : http).request(url, {
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

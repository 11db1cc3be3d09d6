// The HTTP spans of both programs, made here rather than by monkey-patching instrumentations: the
// server span of every request to kas's API and private ports, and the client span of every call
// kas and agentk make (kas to kas, agentk to Prometheus and the Kubernetes API). Names and
// attributes follow OpenTelemetry's HTTP semantic conventions; an incoming `traceparent` is
// continued, and outgoing calls carry the client span's.
import type http from 'node:http';
import { type Context, context, propagation, ROOT_CONTEXT, type Span, SpanKind, SpanStatusCode, trace, type TextMapGetter } from '@opentelemetry/api';

const tracer = trace.getTracer('kas-http');

const headerGetter: TextMapGetter<http.IncomingHttpHeaders> = {
  keys: (headers) => Object.keys(headers),
  get: (headers, key) => headers[key],
};

/** Whatever the request matched, for `http.route` and the span's name (express sets `req.route`). */
type Routed = http.IncomingMessage & { route?: { path?: unknown }; baseUrl?: string };

/**
 * Wraps a request listener so that each request is a SERVER span (continuing the caller's
 * `traceparent`), active while the listener runs and ended when the response is over.
 */
export function traceServer(listener: (req: http.IncomingMessage, res: http.ServerResponse) => void, scheme: 'http' | 'https'): http.RequestListener {
  return (req, res) => {
    const parent = propagation.extract(ROOT_CONTEXT, req.headers, headerGetter);
    const method = req.method ?? 'HTTP';
    const [path, query] = splitUrl(req.url ?? '/');
    const span = tracer.startSpan(
      method,
      {
        kind: SpanKind.SERVER,
        attributes: {
          'http.request.method': method,
          'url.scheme': scheme,
          'url.path': path,
          ...(query ? { 'url.query': query } : {}),
          'server.port': req.socket.localPort ?? 0,
          'client.address': req.socket.remoteAddress ?? '',
          'network.protocol.version': req.httpVersion,
          ...(req.headers['user-agent'] ? { 'user_agent.original': req.headers['user-agent'] } : {}),
        },
      },
      parent,
    );
    res.once('close', () => endServerSpan(span, req as Routed, res));
    context.with(trace.setSpan(parent, span), () => listener(req, res));
  };
}

function endServerSpan(span: Span, req: Routed, res: http.ServerResponse): void {
  const routePath = req.route?.path;
  if (typeof routePath === 'string') {
    const route = `${req.baseUrl ?? ''}${routePath}`;
    span.setAttribute('http.route', route);
    span.updateName(`${req.method} ${route}`);
  }
  const status = res.headersSent ? res.statusCode : 0;
  if (status) span.setAttribute('http.response.status_code', status);
  if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
  else if (!res.writableFinished) span.addEvent('the caller went away before the answer was complete');
  span.end();
}

function splitUrl(url: string): [string, string] {
  const q = url.indexOf('?');
  return q < 0 ? [url, ''] : [url.slice(0, q), url.slice(q + 1)];
}

/** A call this program makes over HTTP: its CLIENT span, and the headers that carry its trace context. */
export interface ClientSpan {
  /** Add these to the outgoing request. */
  headers: Record<string, string>;
  /** The answer's head arrived. */
  answered(status: number): void;
  /** The call failed before or during its answer. */
  failed(error: unknown): void;
  /** The call is over (answer read, or given up). */
  end(): void;
}

export function startClientSpan(method: string, url: URL, parent: Context = context.active()): ClientSpan {
  const span = tracer.startSpan(
    method,
    {
      kind: SpanKind.CLIENT,
      attributes: {
        'http.request.method': method,
        'url.full': url.href,
        'server.address': url.hostname,
        'server.port': Number(url.port) || (url.protocol === 'https:' ? 443 : 80),
      },
    },
    parent,
  );
  const headers: Record<string, string> = {};
  propagation.inject(trace.setSpan(parent, span), headers);
  let ended = false;
  return {
    headers,
    answered: (status) => {
      span.setAttribute('http.response.status_code', status);
      if (status >= 400) span.setStatus({ code: SpanStatusCode.ERROR });
    },
    failed: (error) => {
      const message = error instanceof Error ? error.message : String(error);
      span.setAttribute('error.type', (error as NodeJS.ErrnoException | undefined)?.code ?? 'error');
      span.recordException({ name: 'error', message });
      span.setStatus({ code: SpanStatusCode.ERROR, message });
    },
    end: () => {
      if (ended) return;
      ended = true;
      span.end();
    },
  };
}

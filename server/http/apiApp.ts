// The API port: Rails, the dashboard, kubectl and Prometheus clients.
import { context, type Span, trace } from '@opentelemetry/api';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Logger } from 'pino';
import { type Caller, callerMayReach, UnauthenticatedError, verifyApiToken } from '../auth/tokens.ts';
import type { AgentTokenStore } from '../auth/agentTokens.ts';
import type { CapabilityChecks } from '../modules/capability.ts';
import type { AgentRegistry, ReplicaInfo } from '../routing/registry.ts';
import type { AgentRouter } from '../routing/router.ts';
import type { KasMetrics } from '../observability/metrics.ts';
import { buildSpec, checkAgentId, parseAgentUrl } from './agentRequests.ts';
import { dashboard } from './dashboard.ts';
import { dialectOf, KasError, sendError } from './errors.ts';
import { fallbackTraceId } from './traceContext.ts';

export interface ApiAppOptions {
  apiSecret: Uint8Array;
  tokens: AgentTokenStore;
  registry: AgentRegistry;
  router: AgentRouter;
  checks: CapabilityChecks;
  requestTimeoutMs: number;
  metrics: KasMetrics;
  log: Logger;
  inFlight: { count: number };
}

interface Locals {
  traceId: string;
  /** The HTTP server span of this request, when tracing is on. */
  span: Span | undefined;
  caller: Caller;
  /** Set by the router: what the agent's answer was. */
  served?: { bytes: number; node?: string; replica?: string };
}

function locals(res: Response): Locals {
  return res.locals as Locals;
}

/**
 * Sets X-Trace-Id on every answer, errors included: the trace of the HTTP server span (which
 * continues an incoming traceparent). Without tracing (OTEL_SDK_DISABLED) an id is still made up.
 */
export function traceMiddleware(req: Request, res: Response, next: NextFunction): void {
  const span = trace.getActiveSpan();
  const ctx = span?.spanContext();
  const traceId = ctx && trace.isSpanContextValid(ctx) ? ctx.traceId : fallbackTraceId(req.headers.traceparent as string | undefined);
  res.locals.traceId = traceId;
  res.locals.span = span;
  res.setHeader('X-Trace-Id', traceId);
  next();
}

export function errorMiddleware(log: Logger) {
  return (error: unknown, req: Request, res: Response, _next: NextFunction): void => {
    const dialect = dialectOf(req.originalUrl);
    (res.locals.span as Span | undefined)?.setAttribute('kas.error.code', error instanceof KasError ? error.code : 'internal');
    if (error instanceof KasError) return sendError(res, dialect, error);
    // Express could not decode a route parameter (`%zz`): the caller's mistake, not kas's.
    if (error instanceof URIError) {
      return sendError(res, dialect, new KasError('bad_request', 'the request path is not valid percent-encoding'));
    }
    if ((error as { type?: string }).type === 'entity.parse.failed') {
      return sendError(res, dialect, new KasError('bad_request', 'the request body is not valid'));
    }
    log.error({ err: error, trace_id: res.locals.traceId }, 'request failed unexpectedly');
    sendError(res, dialect, new KasError('bad_gateway', 'kas failed to handle the request; see the kas logs for this trace id'));
  };
}

function describeReplica(info: ReplicaInfo) {
  return {
    replica: info.replica,
    node: info.node,
    connectedAt: info.connectedAt,
    version: info.version,
    capabilities: info.capabilities,
  };
}

/** Bounds a non-streaming request by KAS_REQUEST_TIMEOUT: 504 before the answer began, cut after. */
function enforceDeadline(res: Response, ms: number, dialect: ReturnType<typeof dialectOf>): () => void {
  if (ms <= 0) return () => {};
  const timer = setTimeout(() => {
    const error = new KasError('timeout', `the request took longer than KAS_REQUEST_TIMEOUT (${ms / 1000}s); narrow the query or raise the limit`);
    if (res.headersSent) res.destroy(error);
    else sendError(res, dialect, error);
  }, ms);
  return () => clearTimeout(timer);
}

export function createApiApp(o: ApiAppOptions): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use(traceMiddleware);

  app.use('/api', async (req, res, next) => {
    try {
      res.locals.caller = await verifyApiToken(o.apiSecret, req.headers.authorization);
      next();
    } catch (error) {
      if (error instanceof UnauthenticatedError) {
        return sendError(res, dialectOf(req.originalUrl), new KasError('unauthorized', error.message));
      }
      next(error);
    }
  });

  app.get('/api/v1/agents', (_req, res) => {
    const { caller } = locals(res);
    const agents = o.registry
      .agentIds()
      .filter((id) => callerMayReach(caller, id))
      .map((id) => ({ id, replicas: o.registry.replicas(id).map(describeReplica) }));
    res.json({ agents });
  });

  app.get('/api/v1/agents/:agentId', (req, res) => {
    const agentId = req.params.agentId;
    checkAgentId(agentId);
    if (!callerMayReach(locals(res).caller, agentId)) throw outOfScope(agentId);
    if (!o.tokens.isRegistered(agentId)) {
      throw new KasError('not_found', `agent ${agentId} is not registered; register it with "kas agent register ${agentId}"`);
    }
    res.json({ id: agentId, replicas: o.registry.replicas(agentId).map(describeReplica) });
  });

  app.all('/api/v1/agents/:agentId/:upstream{/*rest}', async (req, res) => {
    const url = parseAgentUrl(req.originalUrl);
    if (!url) throw new KasError('not_found', 'no such route');
    const dialect = dialectOf(req.originalUrl);
    const started = performance.now();
    o.inFlight.count++;
    // Bound to this request's context, so the log line carries its trace_id and span_id.
    res.once(
      'close',
      context.bind(context.active(), () => {
        o.inFlight.count--;
        const seconds = (performance.now() - started) / 1000;
        o.metrics.requests.add(1, { upstream: url.upstream, code: String(res.statusCode) });
        o.metrics.requestDuration.record(seconds, { upstream: url.upstream });
        const served = locals(res).served;
        o.log.info(
          {
            agent_id: url.agentId,
            upstream: url.upstream,
            method: req.method,
            path: url.rawPath,
            status: res.statusCode,
            bytes: served?.bytes ?? 0,
            duration_ms: Math.round(seconds * 1000),
            kas_node: served?.node,
            replica: served?.replica,
            sub: locals(res).caller?.sub,
            complete: res.writableFinished,
          },
          'request served',
        );
      }),
    );
    let stopDeadline = () => {};
    try {
      checkAgentId(url.agentId);
      if (!callerMayReach(locals(res).caller, url.agentId)) throw outOfScope(url.agentId);
      const spec = await buildSpec(req, url, o.checks, o.requestTimeoutMs);
      stopDeadline = enforceDeadline(res, spec.timeoutMs, dialect);
      await o.router.serve(req, res, spec, locals(res).caller.sub);
    } finally {
      stopDeadline();
    }
  });

  app.use(dashboard({ traceUiUrl: process.env.KAS_TRACE_UI_URL }));

  app.use((req, _res, next) => next(new KasError('not_found', `no route for ${req.method} ${req.path}`)));
  app.use(errorMiddleware(o.log));
  return app;
}

function outOfScope(agentId: string): KasError {
  return new KasError('forbidden', `the API token does not grant access to agent ${agentId}; ask for a token that lists it`);
}

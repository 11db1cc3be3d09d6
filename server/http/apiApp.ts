// The API port: Rails, the dashboard, kubectl and Prometheus clients. Authenticates the caller,
// checks its scope, and hands `…/agents/{id}/{capability}/…` to that capability with a Reply.
import { context, type Span, trace } from '@opentelemetry/api';
import type http from 'node:http';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Logger } from 'pino';
import type { KasMetrics } from '../../otel/kasMetrics.ts';
import type { AgentTokenStore } from '../auth/agentTokens.ts';
import { type Caller, callerMayReach, credentialFromHeader, UnauthenticatedError, verifyApiToken } from '../auth/tokens.ts';
import type { NodeLifecycle } from '../lifecycle.ts';
import type { CapabilityRequest, ServerCapability } from '../modules/capability.ts';
import type { AgentRegistry, ReplicaInfo } from '../routing/registry.ts';
import { type AgentUrl, checkAgentId, parseAgentUrl } from './agentUrl.ts';
import { dashboard } from './dashboard.ts';
import { authMiddleware, errorMiddleware, passthroughRoute, withDirectPath } from './directPath.ts';
import type { BodyLimits, StreamsPerToken } from './edgeLimits.ts';
import { type ErrorBody, KasError, kasErrorBody, sendError } from './errors.ts';
import { HttpReply } from './reply.ts';
import { fallbackTraceId } from './traceContext.ts';

export interface ApiAppOptions {
  apiSecret: Uint8Array;
  tokens: AgentTokenStore;
  registry: AgentRegistry;
  capabilities: ReadonlyMap<string, ServerCapability>;
  requestTimeoutMs: number;
  metrics: KasMetrics;
  log: Logger;
  lifecycle: NodeLifecycle;
  /** KAS_TRACE_UI_URL, for the dashboard's trace links. */
  traceUiUrl: string | undefined;
  /** KAS_MAX_REQUEST_BODY and KAS_BODY_TIMEOUT. */
  bodies: BodyLimits;
  /** KAS_MAX_WATCHES_PER_TOKEN. */
  streams: StreamsPerToken;
}

interface Locals {
  traceId: string;
  /** The HTTP server span of this request, when tracing is on. */
  span: Span | undefined;
  caller: Caller;
}

function locals(res: Response): Locals {
  return res.locals as Locals;
}

/**
 * What every request on the API and private ports starts with, as one middleware (each router
 * layer costs every request its turn):
 *
 * - X-Trace-Id on every answer, errors included: the trace of the HTTP server span (which
 *   continues an incoming traceparent). Without tracing (OTEL_SDK_DISABLED) an id is still made up.
 * - A draining node asks clients not to reuse their connection: their next request goes to a node
 *   that stays.
 * - A request head that can be read only one way (requestHeadProblem).
 */
export function requestHead(lifecycle: NodeLifecycle) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const span = trace.getActiveSpan();
    const ctx = span?.spanContext();
    const traceId = ctx && trace.isSpanContextValid(ctx) ? ctx.traceId : fallbackTraceId(req.headers.traceparent as string | undefined);
    res.locals.traceId = traceId;
    res.locals.span = span;
    res.setHeader('X-Trace-Id', traceId);
    if (lifecycle.draining) res.setHeader('Connection', 'close');
    next(requestHeadProblem(req));
  };
}

/**
 * Why a request head cannot be read only one way, if it cannot. Node keeps the first of several
 * Authorization or Host headers and drops the rest, where a proxy in front may keep the last:
 * which one a request means is not for kas to guess. HTTP/1.1 needs its Host (RFC 9112), and
 * Node's parser takes an `HTTP/2.0` request line that no HTTP/2 client sends.
 */
function requestHeadProblem(req: Request): KasError | undefined {
  if (req.httpVersionMajor !== 1) return new KasError('bad_request', `HTTP/${req.httpVersion} is not spoken here; send HTTP/1.1`);
  let authorization = 0;
  let host = 0;
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 13 && name.toLowerCase() === 'authorization') authorization++;
    else if (name.length === 4 && name.toLowerCase() === 'host') host++;
  }
  if (authorization > 1) return new KasError('bad_request', `the request has more than one Authorization header (${authorization}); send one`);
  if (host > 1) return new KasError('bad_request', `the request has more than one Host header (${host}); send one`);
  if (host === 0 && req.httpVersionMinor === 1) return new KasError('bad_request', 'an HTTP/1.1 request needs a Host header');
  return undefined;
}

/** The language errors are answered in under a URL: its capability's, else kas's own. */
export function errorBodyFor(capabilities: ReadonlyMap<string, ServerCapability>, url: string): ErrorBody {
  const capability = capabilities.get(parseAgentUrl(url)?.capability ?? '');
  return capability ? (error, traceId) => capability.errorBody(error, traceId) : kasErrorBody;
}

/** Answers what a request's handling threw, in the language of the capability its URL names. */
export function errorAnswer(log: Logger, capabilities: ReadonlyMap<string, ServerCapability>) {
  return (error: unknown, url: string, res: Response): void => {
    const body = errorBodyFor(capabilities, url);
    (res.locals.span as Span | undefined)?.setAttribute('kas.error.code', error instanceof KasError ? error.code : 'internal');
    if (error instanceof KasError) return sendError(res, error, body);
    // Express could not decode a route parameter (`%zz`): the caller's mistake, not kas's.
    if (error instanceof URIError) return sendError(res, new KasError('bad_request', 'the request path is not valid percent-encoding'), body);
    log.error({ err: error, trace_id: res.locals.traceId }, 'request failed unexpectedly');
    sendError(res, new KasError('bad_gateway', 'kas failed to handle the request; see the kas logs for this trace id'), body);
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

export function createApiApp(o: ApiAppOptions): http.RequestListener {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  // `/API/v1/agents` is no route of kas's: paths are case-sensitive, as the upstreams' are.
  app.set('case sensitive routing', true);
  const head = requestHead(o.lifecycle);
  const answerError = errorAnswer(o.log, o.capabilities);
  app.use(head);

  /** The caller of an /api request, or an error to answer: 401 in the caller's language. */
  const authenticate = async (req: Request, res: Response, url: string): Promise<boolean> => {
    try {
      res.locals.caller = await verifyApiToken(o.apiSecret, req.headers.authorization);
      return true;
    } catch (error) {
      if (!(error instanceof UnauthenticatedError)) throw error;
      sendError(res, new KasError('unauthorized', error.message), errorBodyFor(o.capabilities, url));
      return false;
    }
  };
  app.use('/api', authMiddleware(authenticate));

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

  /** `…/agents/{id}/{capability}/…`: the capability answers, through an HttpReply. */
  const passthrough = async (req: Request, res: Response, url: AgentUrl | undefined): Promise<void> => {
    if (!url) throw new KasError('not_found', 'no such route');
    const capability = o.capabilities.get(url.capability);
    const reply = new HttpReply(res, capability ? (error, traceId) => capability.errorBody(error, traceId) : kasErrorBody);
    const started = performance.now();
    const done = o.lifecycle.begin();
    // Bound to this request's context, so the log line carries its trace_id and span_id.
    res.once(
      'close',
      context.bind(context.active(), () => {
        done();
        const seconds = (performance.now() - started) / 1000;
        o.metrics.requests.add(1, { upstream: url.capability, code: String(res.statusCode) });
        o.metrics.requestDuration.record(seconds, { upstream: url.capability });
        const { served } = reply;
        o.log.info(
          {
            agent_id: url.agentId,
            upstream: url.capability,
            method: req.method,
            path: url.rawPath,
            status: res.statusCode,
            bytes: served.bytes,
            duration_ms: Math.round(seconds * 1000),
            kas_node: served.node,
            replica: served.replica,
            sub: locals(res).caller?.sub,
            complete: res.writableFinished,
          },
          'request served',
        );
      }),
    );
    checkAgentId(url.agentId);
    if (!callerMayReach(locals(res).caller, url.agentId)) throw outOfScope(url.agentId);
    if (!capability) throw new KasError('not_found', `kas offers no "${url.capability}" API; use ${[...o.capabilities.keys()].join(' or ')}`);
    const request: CapabilityRequest = {
      agentId: url.agentId,
      method: req.method,
      rawPath: url.rawPath,
      query: url.query,
      headers: req.headers,
      readBody: () => o.bodies.read(req),
      sub: locals(res).caller.sub,
      requestTimeoutMs: o.requestTimeoutMs,
      holdStream: () => o.streams.hold(credentialFromHeader(req.headers.authorization) ?? '', (release) => res.once('close', release)),
    };
    try {
      await capability.serve(request, reply);
    } catch (error) {
      // The caller left while its request waited: there is nobody to answer.
      if (reply.signal.aborted && !(error instanceof KasError)) return;
      throw error;
    }
  };
  app.all(passthroughRoute(PREFIX), (req, res) => passthrough(req, res, parseAgentUrl(req.originalUrl)));

  app.use(dashboard({ traceUiUrl: o.traceUiUrl }));

  app.use((req, _res, next) => next(new KasError('not_found', `no route for ${req.method} ${req.path}`)));
  app.use(errorMiddleware(answerError));
  return withDirectPath(app, { prefix: PREFIX, head, authenticate, serve: passthrough, answerError });
}

const PREFIX = '/api/v1/agents/';

function outOfScope(agentId: string): KasError {
  return new KasError('forbidden', `the API token does not grant access to agent ${agentId}; ask for a token that lists it`);
}

// The private port: requests other kas nodes forward to the node holding the agent. It answers
// nothing without a kas-to-kas token, judges the request by its capability's rules again, serves
// it only from this node's own replicas, and never forwards again (no loops).
import { context } from '@opentelemetry/api';
import type http from 'node:http';
import express, { type Request, type Response } from 'express';
import type { Logger } from 'pino';
import { UnauthenticatedError, verifyPrivateToken } from '../auth/tokens.ts';
import type { NodeLifecycle } from '../lifecycle.ts';
import type { ServerCapability } from '../modules/capability.ts';
import { NOT_HERE_HEADER } from '../routing/forward.ts';
import { type AgentRouter, NotHereError } from '../routing/router.ts';
import { type AgentUrl, parseAgentUrl } from './agentUrl.ts';
import { errorAnswer, errorBodyFor, requestHead } from './apiApp.ts';
import { authMiddleware, errorMiddleware, passthroughRoute, withDirectPath } from './directPath.ts';
import type { BodyLimits } from './edgeLimits.ts';
import { KasError, sendError } from './errors.ts';
import { HttpReply } from './reply.ts';

export interface PrivateAppOptions {
  privateSecret: Uint8Array;
  router: AgentRouter;
  capabilities: ReadonlyMap<string, ServerCapability>;
  maxTimeoutMs: number;
  log: Logger;
  lifecycle: NodeLifecycle;
  bodies: BodyLimits;
}

export function createPrivateApp(o: PrivateAppOptions): http.RequestListener {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  const head = requestHead(o.lifecycle);
  const answerError = errorAnswer(o.log, o.capabilities);
  app.use(head);

  /** The sending node's kas-to-kas token: false when it answered (401) itself. */
  const authenticate = async (req: Request, res: Response, url: string): Promise<boolean> => {
    try {
      res.locals.claims = await verifyPrivateToken(o.privateSecret, req.headers.authorization);
      return true;
    } catch (error) {
      if (!(error instanceof UnauthenticatedError)) throw error;
      sendError(res, new KasError('unauthorized', 'the private port takes kas-to-kas requests only'), errorBodyFor(o.capabilities, url));
      return false;
    }
  };
  app.use(authMiddleware(authenticate));

  /** A forwarded `…/agents/{id}/{capability}/…`, served from this node's replicas only. */
  const passthrough = async (req: Request, res: Response, url: AgentUrl | undefined): Promise<void> => {
    const claims = res.locals.claims as Awaited<ReturnType<typeof verifyPrivateToken>>;
    if (!url || url.agentId !== claims.agent) throw new KasError('forbidden', 'the kas-to-kas token is for another agent');
    const capability = o.capabilities.get(url.capability);
    if (!capability) throw new KasError('not_found', `kas offers no "${url.capability}" API`);
    const reply = new HttpReply(res, (error, traceId) => capability.errorBody(error, traceId));
    const done = o.lifecycle.begin();
    const started = performance.now();
    // Bound to this request's context, so the log line carries its trace_id and span_id.
    res.once(
      'close',
      context.bind(context.active(), () => {
        done();
        o.log.debug(
          {
            agent_id: url.agentId,
            upstream: url.capability,
            status: res.statusCode,
            bytes: reply.served.bytes,
            duration_ms: Math.round(performance.now() - started),
            replica: reply.served.replica,
          },
          'forwarded request served',
        );
      }),
    );
    const asked = Number(req.headers['x-kas-timeout-ms'] ?? o.maxTimeoutMs);
    // 0 would mean unbounded: streams are unbounded by their capability's rule, not by what a header says.
    const timeoutMs = Number.isFinite(asked) && asked > 0 ? Math.min(asked, o.maxTimeoutMs) : o.maxTimeoutMs;
    const request = await capability.check({
      agentId: url.agentId,
      method: req.method,
      rawPath: url.rawPath,
      query: url.query,
      headers: req.headers,
      readBody: () => o.bodies.read(req),
      sub: claims.sub,
      requestTimeoutMs: timeoutMs,
    });
    let stream;
    try {
      stream = await o.router.openHere(request, claims.replica, reply.signal);
    } catch (error) {
      // Nothing has been written: the sending node may try a replica elsewhere.
      if (error instanceof NotHereError) res.setHeader(NOT_HERE_HEADER, '1');
      if (reply.signal.aborted && !(error instanceof KasError)) return;
      throw error;
    }
    await reply.pass(stream, request.streaming);
  };
  app.all(passthroughRoute(PREFIX), (req, res) => passthrough(req, res, parseAgentUrl(req.originalUrl)));

  // A capability asking about its shared work on this node (a live graph's window, say).
  app.get('/private/v1/peer/:capability/:agentId{/*rest}', async (req, res) => {
    const { capability: name, agentId } = req.params;
    const claims = res.locals.claims as Awaited<ReturnType<typeof verifyPrivateToken>>;
    if (agentId !== claims.agent) throw new KasError('forbidden', 'the kas-to-kas token is for another agent');
    const capability = o.capabilities.get(name);
    if (!capability?.servePeer) throw new KasError('not_found', `kas offers no "${name}" peer API`);
    const url = new URL(req.originalUrl, 'http://peer');
    const rawPath = url.pathname.slice(`/private/v1/peer/${name}/${agentId}`.length) || '/';
    await capability.servePeer(agentId, rawPath, url.searchParams, new HttpReply(res, (error, traceId) => capability.errorBody(error, traceId)));
  });

  app.use((req, _res, next) => next(new KasError('not_found', `no route for ${req.method} ${req.path}`)));
  app.use(errorMiddleware(answerError));
  return withDirectPath(app, { prefix: PREFIX, head, authenticate, serve: passthrough, answerError });
}

const PREFIX = '/private/v1/agents/';

// The private port: requests other kas nodes forward to the node holding the agent. It answers
// nothing without a kas-to-kas token, and never forwards again (no loops).
import { context } from '@opentelemetry/api';
import express from 'express';
import type { Logger } from 'pino';
import { UnauthenticatedError, verifyPrivateToken } from '../auth/tokens.ts';
import type { CapabilityChecks } from '../modules/capability.ts';
import type { AgentRouter } from '../routing/router.ts';
import { buildSpec, parseAgentUrl } from './agentRequests.ts';
import { dialectOf, KasError, sendError } from './errors.ts';
import { errorMiddleware, traceMiddleware } from './apiApp.ts';

export interface PrivateAppOptions {
  privateSecret: Uint8Array;
  router: AgentRouter;
  checks: CapabilityChecks;
  maxTimeoutMs: number;
  log: Logger;
  inFlight: { count: number };
}

export function createPrivateApp(o: PrivateAppOptions): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use(traceMiddleware);

  app.use(async (req, res, next) => {
    try {
      res.locals.claims = await verifyPrivateToken(o.privateSecret, req.headers.authorization);
      next();
    } catch (error) {
      if (!(error instanceof UnauthenticatedError)) return next(error);
      sendError(res, dialectOf(req.originalUrl), new KasError('unauthorized', 'the private port takes kas-to-kas requests only'));
    }
  });

  app.all('/private/v1/agents/:agentId/:upstream{/*rest}', async (req, res) => {
    const url = parseAgentUrl(req.originalUrl);
    const claims = res.locals.claims as Awaited<ReturnType<typeof verifyPrivateToken>>;
    if (!url || url.agentId !== claims.agent) throw new KasError('forbidden', 'the kas-to-kas token is for another agent');
    o.inFlight.count++;
    const started = performance.now();
    // Bound to this request's context, so the log line carries its trace_id and span_id.
    res.once(
      'close',
      context.bind(context.active(), () => {
        o.inFlight.count--;
        const served = res.locals.served as { bytes: number; replica?: string } | undefined;
        o.log.debug(
          {
            agent_id: url.agentId,
            upstream: url.upstream,
            status: res.statusCode,
            bytes: served?.bytes ?? 0,
            duration_ms: Math.round(performance.now() - started),
            replica: served?.replica,
          },
          'forwarded request served',
        );
      }),
    );
    const asked = Number(req.headers['x-kas-timeout-ms'] ?? o.maxTimeoutMs);
    const timeoutMs = Number.isFinite(asked) && asked >= 0 ? Math.min(asked, o.maxTimeoutMs) : o.maxTimeoutMs;
    const spec = await buildSpec(req, url, o.checks, timeoutMs);
    await o.router.serveLocally(res, spec, claims.replica);
  });

  app.use((req, _res, next) => next(new KasError('not_found', `no route for ${req.method} ${req.path}`)));
  app.use(errorMiddleware(o.log));
  return app;
}

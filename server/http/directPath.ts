// The passthrough without express. It is nearly every request kas serves, and express's
// per-request work (its request and response prototypes, the router's layers) was a fifth to a
// third of kas's CPU for one (bench/README.md). A URL that express would route to the
// passthrough, and whose path it could decode there, runs the same steps directly: the same
// middleware functions and the same handler, errors answered by the same function. Everything
// else goes to express, which gets the same steps from passthroughRoute, authMiddleware and
// errorMiddleware below.
import type http from 'node:http';
import type express from 'express';
import type { NextFunction, Request, Response } from 'express';
import { type AgentUrl, parseAgentUrl } from './agentUrl.ts';

export interface DirectPath {
  /** `/api/v1/agents/` or `/private/v1/agents/`. */
  prefix: string;
  /** What runs first for every request (apiApp.ts's requestHead). */
  head: (req: Request, res: Response, next: NextFunction) => void;
  /** The caller's token: false when it answered (401) itself. */
  authenticate: (req: Request, res: Response, rawUrl: string) => Promise<boolean>;
  /** The passthrough's handler; `url` is undefined for a URL it does not parse. */
  serve: (req: Request, res: Response, url: AgentUrl | undefined) => Promise<void>;
  /** Answers what the steps threw. */
  answerError: (error: unknown, rawUrl: string, res: Response) => void;
}

/** The express route of the passthrough under `prefix` (the span of a request is named by it). */
export function passthroughRoute(prefix: string): string {
  return `${prefix}:agentId/:upstream{/*rest}`;
}

/** `authenticate` as express middleware. */
export function authMiddleware(authenticate: DirectPath['authenticate']) {
  return async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    try {
      if (await authenticate(req, res, req.originalUrl)) next();
    } catch (error) {
      next(error);
    }
  };
}

/** `answerError` as express's error middleware. */
export function errorMiddleware(answerError: DirectPath['answerError']) {
  return (error: unknown, req: Request, res: Response, _next: NextFunction): void => answerError(error, req.originalUrl, res);
}

/** `app`, with the URLs DirectPath describes served without it. */
export function withDirectPath(app: express.Express, o: DirectPath): http.RequestListener {
  // What traceServer (otel/http.ts) names the span by, as express would have set it.
  const route = Object.freeze({ path: passthroughRoute(o.prefix) });
  const direct = async (req: Request, res: Response, rawUrl: string, url: AgentUrl): Promise<void> => {
    try {
      let problem: unknown;
      o.head(req, res, (error?: unknown) => (problem = error));
      if (problem) throw problem;
      if (await o.authenticate(req, res, rawUrl)) await o.serve(req, res, url);
    } catch (error) {
      o.answerError(error, rawUrl, res);
    }
  };
  return (req, res) => {
    const rawUrl = req.url ?? '/';
    const url = directPathUrl(rawUrl, o.prefix);
    if (!url) return void app(req, res);
    const request = req as Request;
    const response = res as Response;
    response.locals = Object.create(null) as Record<string, unknown>;
    (request as { route?: { path: string } }).route = route;
    void direct(request, response, rawUrl, url);
  };
}

/**
 * The URL, parsed, when express would hand it to the passthrough route's handler and decode its
 * parameters without error: `{prefix}{id}/{capability}…` with a path of valid percent-encoding.
 */
export function directPathUrl(rawUrl: string, prefix: string): AgentUrl | undefined {
  if (!rawUrl.startsWith(prefix)) return undefined;
  const url = parseAgentUrl(rawUrl);
  if (!url) return undefined;
  const query = rawUrl.indexOf('?');
  const path = query === -1 ? rawUrl : rawUrl.slice(0, query);
  if (!path.includes('%')) return url;
  try {
    decodeURIComponent(path);
    return url;
  } catch {
    return undefined;
  }
}

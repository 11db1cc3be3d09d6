// The passthrough without express. It is nearly every request kas serves, and express's
// per-request work (its request and response prototypes, the router's layers) was a fifth to a
// third of kas's CPU for one (bench/README.md). A URL that express would route to the
// passthrough, and whose path it could decode there, runs the same steps directly: the same
// middleware functions and the same handler, errors answered by the same function. Everything
// else goes to express.
import type http from 'node:http';
import type express from 'express';
import type { NextFunction, Request, Response } from 'express';
import { parseAgentUrl } from './agentUrl.ts';

export interface DirectPath {
  /** `/api/v1/agents/` or `/private/v1/agents/`. */
  prefix: string;
  /** The express route the same URLs take, which names the request's span (otel/http.ts). */
  route: string;
  /** What runs first for every request (apiApp.ts's requestHead). */
  head: (req: Request, res: Response, next: NextFunction) => void;
  /** The caller's token: false when it answered (401) itself. */
  authenticate: (req: Request, res: Response, url: string) => Promise<boolean>;
  /** The route's handler. */
  serve: (req: Request, res: Response, url: string) => Promise<void>;
  /** The error middleware's answer. */
  answerError: (error: unknown, url: string, res: Response) => void;
}

/** `app`, with the URLs DirectPath describes served without it. */
export function withDirectPath(app: express.Express, o: DirectPath): http.RequestListener {
  const direct = async (req: Request, res: Response, url: string): Promise<void> => {
    try {
      let problem: unknown;
      o.head(req, res, (error?: unknown) => (problem = error));
      if (problem) throw problem;
      if (await o.authenticate(req, res, url)) await o.serve(req, res, url);
    } catch (error) {
      o.answerError(error, url, res);
    }
  };
  return (req, res) => {
    const url = req.url ?? '/';
    if (!takesDirectPath(url, o.prefix)) return void app(req, res);
    const request = req as Request;
    const response = res as Response;
    response.locals = Object.create(null) as Record<string, unknown>;
    (request as { route?: { path: string } }).route = { path: o.route };
    void direct(request, response, url);
  };
}

/**
 * A URL express would hand to the passthrough route's handler, whose parameters it would decode
 * without error: `{prefix}{id}/{capability}…` with a path that is valid percent-encoding.
 */
export function takesDirectPath(url: string, prefix = '/api/v1/agents/'): boolean {
  if (!url.startsWith(prefix) || !parseAgentUrl(url)) return false;
  const query = url.indexOf('?');
  const path = query === -1 ? url : url.slice(0, query);
  if (!path.includes('%')) return true;
  try {
    decodeURIComponent(path);
    return true;
  } catch {
    return false;
  }
}

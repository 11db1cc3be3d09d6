// Errors kas itself produces, each with a stable code, answered in the caller's language: the
// Prometheus envelope under /prometheus, a Kubernetes Status under /kubernetes, kas's own shape
// elsewhere.
import type { Response } from 'express';

export type Dialect = 'prometheus' | 'kubernetes' | 'kas';

export type KasErrorCode =
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'bad_request'
  | 'payload_too_large'
  | 'no_replica'
  | 'bad_gateway'
  | 'timeout'
  | 'draining';

const STATUS: Record<KasErrorCode, number> = {
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  bad_request: 400,
  payload_too_large: 413,
  no_replica: 503,
  bad_gateway: 502,
  timeout: 504,
  draining: 503,
};

const KUBERNETES_REASON: Record<number, string> = {
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  413: 'RequestEntityTooLarge',
  502: 'InternalError',
  503: 'ServiceUnavailable',
  504: 'Timeout',
};

export class KasError extends Error {
  override name = 'KasError';
  readonly code: KasErrorCode;
  readonly status: number;
  readonly retryAfterSeconds: number | undefined;

  constructor(code: KasErrorCode, message: string, options: { retryAfterSeconds?: number } = {}) {
    super(message);
    this.code = code;
    this.status = STATUS[code];
    this.retryAfterSeconds = options.retryAfterSeconds;
  }
}

export function dialectOf(path: string): Dialect {
  const match = /^\/(?:api|private)\/v1\/agents\/[^/]+\/(prometheus|kubernetes)(?:[/?]|$)/.exec(path);
  return (match?.[1] as Dialect | undefined) ?? 'kas';
}

export function errorBody(dialect: Dialect, error: KasError, traceId: string): unknown {
  switch (dialect) {
    case 'prometheus':
      return { status: 'error', errorType: error.code, error: error.message };
    case 'kubernetes':
      return {
        kind: 'Status',
        apiVersion: 'v1',
        metadata: {},
        status: 'Failure',
        message: error.message,
        reason: KUBERNETES_REASON[error.status] ?? 'InternalError',
        code: error.status,
      };
    case 'kas':
      return { error: { code: error.code, message: error.message, traceId } };
  }
}

export function sendError(res: Response, dialect: Dialect, error: KasError): void {
  if (res.headersSent) {
    res.destroy(error);
    return;
  }
  const traceId = String(res.getHeader('x-trace-id') ?? '');
  if (error.retryAfterSeconds !== undefined) res.setHeader('Retry-After', String(error.retryAfterSeconds));
  if (error.status === 401) res.setHeader('WWW-Authenticate', 'Bearer realm="kas", Basic realm="kas"');
  res.status(error.status).json(errorBody(dialect, error, traceId));
}

// Errors kas itself produces, each with a stable code and the HTTP status it answers with. They
// carry no wording of any caller's language: the capability a request was for renders them (the
// Prometheus envelope, a Kubernetes Status), and the edge renders the rest in kas's own shape.

export type KasErrorCode =
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'bad_request'
  | 'request_timeout'
  | 'payload_too_large'
  | 'headers_too_large'
  | 'too_many_requests'
  | 'no_replica'
  | 'bad_gateway'
  | 'timeout';

const STATUS: Record<KasErrorCode, number> = {
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  bad_request: 400,
  request_timeout: 408,
  payload_too_large: 413,
  headers_too_large: 431,
  too_many_requests: 429,
  no_replica: 503,
  bad_gateway: 502,
  timeout: 504,
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

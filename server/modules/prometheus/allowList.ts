// Which requests callers may make of an agent's Prometheus: the read-only query APIs pass;
// admin APIs, remote write, federation and the UI do not.
import { KasError } from '../../routing/errors.ts';
import { pickHeaders } from '../headers.ts';
import { encodePath, normalisePath } from '../paths.ts';

const ALLOWED = [
  'api/v1/query',
  'api/v1/query_range',
  'api/v1/query_exemplars',
  'api/v1/series',
  'api/v1/labels',
  'api/v1/label/*/values',
  'api/v1/metadata',
  'api/v1/status/buildinfo',
  '-/healthy',
  '-/ready',
].map((pattern) => pattern.split('/'));

/** Request headers Prometheus may see; never the caller's credentials or cookies. */
const FORWARDED_HEADERS = ['accept', 'accept-encoding', 'content-type', 'user-agent'];

function allowed(segments: string[]): boolean {
  return ALLOWED.some(
    (pattern) => pattern.length === segments.length && pattern.every((p, i) => p === '*' || p === segments[i]),
  );
}

export interface CheckedPrometheusRequest {
  method: 'GET' | 'POST';
  path: string;
  headers: Record<string, string>;
}

export function checkPrometheusRequest(request: {
  method: string;
  rawPath: string;
  headers: Readonly<Record<string, string | string[] | undefined>>;
}): CheckedPrometheusRequest {
  const segments = normalisePath(request.rawPath);
  const path = segments.join('/');
  if (request.method !== 'GET' && request.method !== 'POST') {
    throw new KasError('forbidden', `${request.method} is not allowed on the Prometheus API through kas; use GET or POST`);
  }
  if (!allowed(segments)) {
    throw new KasError('forbidden', `Prometheus path /${path} is not allowed through kas; only the read-only query APIs are`);
  }
  return { method: request.method, path: encodePath(segments), headers: pickHeaders(request.headers, FORWARDED_HEADERS) };
}

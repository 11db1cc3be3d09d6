// One-off reads over kas's HTTP API: the token as a bearer, a traceparent from the action that
// asked, and errors in the words of whoever answered (kas, Prometheus or the Kubernetes API).
import type { Trace } from './lib/traceparent.ts';

export class ApiError extends Error {
  override name = 'ApiError';
  readonly status: number;
  readonly traceId: string | undefined;
  constructor(status: number, message: string, traceId: string | undefined) {
    super(message);
    this.status = status;
    this.traceId = traceId;
  }
}

let currentToken = '';
export function setApiToken(token: string): void {
  currentToken = token;
}

/** What an error body says: kas's `{error:{message}}`, Prometheus's `{errorType,error}`, a Kubernetes Status. */
export function errorText(body: unknown, status: number, statusText: string): string {
  if (body && typeof body === 'object') {
    const b = body as Record<string, unknown>;
    if (b.error && typeof b.error === 'object' && typeof (b.error as { message?: unknown }).message === 'string') {
      return (b.error as { message: string }).message;
    }
    if (typeof b.error === 'string') return typeof b.errorType === 'string' ? `${b.errorType}: ${b.error}` : b.error;
    if (b.kind === 'Status' && typeof b.message === 'string') return b.message;
  }
  return `${status} ${statusText}`.trim();
}

export async function apiFetch(path: string, trace: Trace, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  headers.set('authorization', `Bearer ${currentToken}`);
  headers.set('traceparent', trace.traceparent());
  return fetch(path, { ...init, headers, credentials: 'omit' });
}

export async function apiJson<T>(path: string, trace: Trace, init: RequestInit = {}): Promise<T> {
  const res = await apiFetch(path, trace, init);
  const text = await res.text();
  let body: unknown;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = undefined;
  }
  if (!res.ok) throw new ApiError(res.status, errorText(body, res.status, res.statusText), res.headers.get('x-trace-id') ?? undefined);
  return body as T;
}

export function agentBase(agentId: string, upstream: 'prometheus' | 'kubernetes'): string {
  return `/api/v1/agents/${encodeURIComponent(agentId)}/${upstream}`;
}

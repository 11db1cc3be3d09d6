import type { KasError } from '../../routing/errors.ts';

const REASON: Record<number, string> = {
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  408: 'Timeout',
  413: 'RequestEntityTooLarge',
  431: 'RequestEntityTooLarge',
  429: 'TooManyRequests',
  502: 'InternalError',
  503: 'ServiceUnavailable',
  504: 'Timeout',
};

/** An error kas itself answers under `/kubernetes`: a Kubernetes Status, so kubectl prints it. */
export function kubernetesStatus(error: KasError): unknown {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: error.message,
    reason: REASON[error.status] ?? 'InternalError',
    code: error.status,
  };
}

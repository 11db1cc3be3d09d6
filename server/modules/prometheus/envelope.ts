import type { KasError } from '../../routing/errors.ts';

/** An error kas itself answers under `/prometheus`: the Prometheus API's own envelope, so its clients print it. */
export function prometheusErrorBody(error: KasError): { status: 'error'; errorType: string; error: string } {
  return { status: 'error', errorType: error.code, error: error.message };
}

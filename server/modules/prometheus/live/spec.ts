// What identifies a live graph (agent, query, range, step) and the limits it must keep.
import { createHash } from 'node:crypto';
import { parseDuration } from '../../../../protocol/durations.ts';
import { KasError } from '../../../routing/errors.ts';

/** Prometheus's own limit on the points of one series in a range query. */
export const MAX_POINTS = 11_000;
export const MIN_STEP_MS = 1000;

export interface LiveSpec {
  agentId: string;
  query: string;
  rangeMs: number;
  stepMs: number;
  /** The graph's identity cluster-wide: identical subscriptions share everything. */
  key: string;
  /** A short stable digest of the key, for Redis keys and kas-to-kas paths. */
  id: string;
}

/** `5m`, `15s`, `500ms` or plain seconds (`30`, `1.5`), to milliseconds. */
function durationMs(value: string | null | undefined, name: string): number {
  if (value === null || value === undefined || value === '') throw badData(`${name} is required: a duration such as 15s or 5m, or seconds`);
  const trimmed = value.trim();
  const ms = /^\d+(?:\.\d+)?$/.test(trimmed) ? Math.round(Number(trimmed) * 1000) : parseDuration(trimmed);
  if (ms === undefined || !Number.isFinite(ms)) throw badData(`${name}=${value} is not a duration such as 15s or 5m, or seconds`);
  return ms;
}

function badData(message: string): KasError {
  return new KasError('bad_request', message);
}

export function liveSpec(agentId: string, params: { query?: string | null; range?: string | null; step?: string | null }): LiveSpec {
  const query = params.query ?? '';
  if (query.trim() === '') throw badData('query is required: the PromQL expression to graph');
  const rangeMs = durationMs(params.range, 'range');
  const stepMs = durationMs(params.step, 'step');
  if (stepMs < MIN_STEP_MS) throw badData(`step=${params.step} is below the smallest live step, 1s`);
  if (rangeMs < stepMs) throw badData(`range=${params.range} is shorter than step=${params.step}`);
  if (rangeMs / stepMs > MAX_POINTS) {
    throw badData(`exceeded maximum resolution of 11,000 points per timeseries (range ${params.range} / step ${params.step}); try a larger step`);
  }
  const key = [agentId, query, rangeMs, stepMs].join('\n');
  const id = createHash('sha256').update(key).digest('base64url').slice(0, 22);
  return { agentId, query, rangeMs, stepMs, key, id };
}

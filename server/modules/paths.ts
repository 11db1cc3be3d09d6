import { KasError } from '../routing/errors.ts';

/**
 * Normalises the path a caller asked for below an upstream's base URL into decoded segments:
 * empty and `.` segments vanish, `..` climbs, and anything that could mean a different path to
 * the upstream than to kas (encoded slashes or backslashes, NUL, climbing above the base) is
 * refused. Allow-lists match the result, and only the result is sent on.
 */
export function normalisePath(raw: string): string[] {
  if (/%2f|%5c|%00|\\/i.test(raw)) {
    throw new KasError('forbidden', `path ${raw} is not allowed: encoded slashes and backslashes are refused`);
  }
  const segments: string[] = [];
  for (const encoded of raw.split('/')) {
    let segment: string;
    try {
      segment = decodeURIComponent(encoded);
    } catch {
      throw new KasError('bad_request', `path ${raw} is not valid percent-encoding`);
    }
    if (segment === '' || segment === '.') continue;
    if (segment === '..') {
      if (segments.length === 0) throw new KasError('forbidden', `path ${raw} climbs above the base URL`);
      segments.pop();
      continue;
    }
    segments.push(segment);
  }
  return segments;
}

export function encodePath(segments: string[]): string {
  return `/${segments.map(encodeURIComponent).join('/')}`;
}

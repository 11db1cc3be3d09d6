// Ages the way kubectl prints them: 45s, 12m, 3h5m, 4d, 2y.

export function formatAge(ms: number): string {
  if (!Number.isFinite(ms)) return '';
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 10) return s % 60 === 0 ? `${m}m` : `${m}m${s % 60}s`;
  if (m < 180) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 8) return m % 60 === 0 ? `${h}h` : `${h}h${m % 60}m`;
  if (h < 48) return `${h}h`;
  const d = Math.floor(h / 24);
  if (d < 8) return h % 24 === 0 ? `${d}d` : `${d}d${h % 24}h`;
  if (d < 365 * 2) return `${d}d`;
  return `${Math.floor(d / 365)}y`;
}

/** Milliseconds since an RFC 3339 time, or NaN when there is none. */
export function ageOf(timestamp: string | undefined, now: number): number {
  if (!timestamp) return Number.NaN;
  return now - Date.parse(timestamp);
}

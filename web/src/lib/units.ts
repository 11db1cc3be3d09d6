// Units for a graph's y axis, guessed from the query the way an operator reads it: Prometheus
// names carry their unit (`_seconds`, `_bytes`), rate() of a counter is per second, and ratios
// read as percentages only when the name says so.

export type Unit = 'seconds' | 'bytes' | 'bytesPerSecond' | 'perSecond' | 'ratio' | 'none';

export function unitOf(query: string): Unit {
  const q = query.replace(/\{[^}]*\}/g, '').replace(/"[^"]*"/g, '');
  const rate = /\b(?:rate|irate)\s*\(/.test(q);
  const names = q.match(/[a-zA-Z_:][a-zA-Z0-9_:]*/g) ?? [];
  const has = (re: RegExp) => names.some((n) => re.test(n));
  // Aggregations like count() lose the unit.
  if (/\b(?:count|count_values|absent|changes|resets)\s*(?:by|without)?\s*\(/.test(q)) return 'none';
  if (has(/_bytes(?:_total)?$/)) return rate ? 'bytesPerSecond' : 'bytes';
  if (has(/_seconds(?:_total|_sum)?$/)) return rate && has(/_seconds_total$/) ? 'ratio' : 'seconds';
  if (has(/_ratio$/)) return 'ratio';
  if (rate) return 'perSecond';
  return 'none';
}

const SI = ['', 'k', 'M', 'G', 'T', 'P', 'E'];
const SI_SMALL = ['', 'm', 'µ', 'n', 'p'];
const BINARY = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];

function trim(n: number): string {
  const s = Math.abs(n) >= 100 ? n.toFixed(0) : Math.abs(n) >= 10 ? n.toFixed(1) : n.toFixed(2);
  return s.includes('.') ? s.replace(/\.?0+$/, '') : s;
}

function si(v: number, suffix: string): string {
  if (v === 0) return `0${suffix}`;
  const a = Math.abs(v);
  if (a < 1) {
    let i = 0;
    let x = v;
    while (Math.abs(x) < 1 && i < SI_SMALL.length - 1) {
      x *= 1000;
      i++;
    }
    return `${trim(x)}${SI_SMALL[i]}${suffix}`;
  }
  let i = 0;
  let x = v;
  while (Math.abs(x) >= 1000 && i < SI.length - 1) {
    x /= 1000;
    i++;
  }
  return `${trim(x)}${SI[i]}${suffix}`;
}

export function formatValue(v: number | null | undefined, unit: Unit): string {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  switch (unit) {
    case 'bytes':
    case 'bytesPerSecond': {
      let i = 0;
      let x = v;
      while (Math.abs(x) >= 1024 && i < BINARY.length - 1) {
        x /= 1024;
        i++;
      }
      return `${trim(x)} ${BINARY[i]}${unit === 'bytesPerSecond' ? '/s' : ''}`;
    }
    case 'seconds':
      if (Math.abs(v) >= 3600) return `${trim(v / 3600)}h`;
      if (Math.abs(v) >= 60) return `${trim(v / 60)}min`;
      return si(v, 's');
    case 'ratio':
      return `${trim(v * 100)}%`;
    case 'perSecond':
      return `${si(v, '')}/s`;
    case 'none':
      return si(v, '');
  }
}

export function unitLabel(unit: Unit): string {
  return { seconds: 'seconds', bytes: 'bytes', bytesPerSecond: 'bytes/s', perSecond: 'per second', ratio: 'percent', none: '' }[unit];
}

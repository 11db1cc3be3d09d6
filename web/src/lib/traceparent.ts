// W3C trace context made in the browser, so that a trace starts at the operator's click: one trace
// id per action, a fresh parent span id for each request or subscription the action makes.

export type RandomFill = (bytes: Uint8Array<ArrayBuffer>) => Uint8Array<ArrayBuffer>;

const defaultFill: RandomFill = (bytes) => crypto.getRandomValues(bytes);

function hex(bytes: Uint8Array): string {
  let out = '';
  for (const b of bytes) out += b.toString(16).padStart(2, '0');
  return out;
}

/** `count` random bytes as lower-case hex, never all zeros (an all-zero id is invalid). */
export function randomId(count: number, fill: RandomFill = defaultFill): string {
  for (;;) {
    const bytes = fill(new Uint8Array(count));
    if (bytes.some((b) => b !== 0)) return hex(bytes);
  }
}

export function formatTraceparent(traceId: string, spanId: string, sampled = true): string {
  return `00-${traceId}-${spanId}-${sampled ? '01' : '00'}`;
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

export function parseTraceparent(header: string): { traceId: string; spanId: string; sampled: boolean } | undefined {
  const m = TRACEPARENT.exec(header);
  if (!m || m[1] === 'ff' || /^0+$/.test(m[2]!) || /^0+$/.test(m[3]!)) return undefined;
  return { traceId: m[2]!, spanId: m[3]!, sampled: (Number.parseInt(m[4]!, 16) & 1) === 1 };
}

/** One operator action: every request it makes shares the trace id, each with its own span id. */
export class Trace {
  readonly traceId: string;
  readonly #fill: RandomFill;

  constructor(fill: RandomFill = defaultFill) {
    this.#fill = fill;
    this.traceId = randomId(16, fill);
  }

  /** A traceparent for one more request of this action. */
  traceparent(): string {
    return formatTraceparent(this.traceId, randomId(8, this.#fill));
  }
}

/** The operator's trace UI link for a trace id (`{traceId}` replaced), or undefined when unset. */
export function traceLink(template: string | undefined, traceId: string): string | undefined {
  if (!template || !template.includes('{traceId}')) return undefined;
  let url: URL;
  try {
    url = new URL(template.replaceAll('{traceId}', traceId));
  } catch {
    return undefined;
  }
  // Only web links: a javascript: URL written into the setting must not become a clickable link.
  return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : undefined;
}

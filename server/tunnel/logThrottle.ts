// Log lines about what an agent (or anyone on the agent port) does wrong, bounded: a rogue that
// sends 60,000 bad messages must not write 60,000 lines. Per interval, the first few of each kind
// are logged in full (so the first one, with its details, is there at once); the rest are only
// counted, and one summary line per interval says how many of each kind there were.
import type { Logger } from 'pino';

export const SUMMARY_INTERVAL_MS = 10_000;
/** Lines logged in full per kind and interval. */
export const FULL_LINES_PER_KIND = 3;

type Level = 'warn' | 'info' | 'debug';

export class LogThrottle {
  readonly #log: Logger;
  readonly #summary: string;
  readonly #intervalMs: number;
  #counts = new Map<string, { total: number; logged: number; level: Level }>();
  #timer: NodeJS.Timeout | undefined;
  #started = 0;

  /** `summary`: the message of the summary line. */
  constructor(log: Logger, summary: string, intervalMs = SUMMARY_INTERVAL_MS) {
    this.#log = log;
    this.#summary = summary;
    this.#intervalMs = intervalMs;
  }

  /**
   * One occurrence of `kind`: logged in full while few, else counted for the summary. `fields`
   * may be a function: it is called only for a line that is logged.
   */
  note(kind: string, level: Level, fields: Record<string, unknown> | (() => Record<string, unknown>), message: string): void {
    let count = this.#counts.get(kind);
    if (!count) this.#counts.set(kind, (count = { total: 0, logged: 0, level }));
    count.total++;
    if (count.logged < FULL_LINES_PER_KIND) {
      count.logged++;
      this.#log[level]({ ...(typeof fields === 'function' ? fields() : fields), kind }, message);
    }
    if (!this.#timer) {
      this.#started = Date.now();
      this.#timer = setTimeout(() => this.flush(), this.#intervalMs).unref();
    }
  }

  /** Writes the summary of the interval so far (if any line was held back) and starts a new one. */
  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const counts = this.#counts;
    this.#counts = new Map();
    let held = 0;
    let level: Level = 'debug';
    for (const count of counts.values()) {
      held += count.total - count.logged;
      if (count.total > count.logged && rank(count.level) > rank(level)) level = count.level;
    }
    if (held === 0) return;
    const totals = Object.fromEntries([...counts].map(([kind, count]) => [kind, count.total]));
    this.#log[level]({ counts: totals, not_logged: held, interval_s: Math.round((Date.now() - this.#started) / 100) / 10 }, this.#summary);
  }
}

function rank(level: Level): number {
  return level === 'warn' ? 2 : level === 'info' ? 1 : 0;
}

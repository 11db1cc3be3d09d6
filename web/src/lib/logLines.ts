// A followed pod log: lines kept in a bounded buffer, each line's Kubernetes timestamp (the
// subscription asks for `timestamps`) split off and remembered, so that after a reconnect the
// follow resumes with `sinceTime` and the lines it repeats (sinceTime is inclusive) are dropped.

export interface LogLine {
  /** RFC 3339 with nanoseconds, as the kubelet writes it; '' when the line had none. */
  time: string;
  text: string;
}

const STAMP = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)) ?/;

export function splitTimestamp(line: string): LogLine {
  const m = STAMP.exec(line);
  return m ? { time: m[1]!, text: line.slice(m[0].length) } : { time: '', text: line };
}

/** Nanosecond-precision comparison key for RFC 3339 UTC stamps; other forms by Date.parse. */
function timeKey(time: string): string {
  const m = /^(.*?:\d\d)(?:\.(\d+))?Z$/.exec(time);
  if (m) return `${m[1]}.${(m[2] ?? '').padEnd(9, '0')}`;
  const ms = Date.parse(time);
  return Number.isNaN(ms) ? time : `${new Date(ms).toISOString().slice(0, 19)}.${String(ms % 1000).padStart(3, '0').padEnd(9, '0')}`;
}

export class LogBuffer {
  readonly max: number;
  lines: LogLine[] = [];
  /** Lines dropped from the front to stay within `max`. */
  dropped = 0;
  #lastTime = '';
  #lastKey = '';
  /** Lines already seen at #lastTime: a resumed follow repeats that second, they must not double. */
  #atLast = new Map<string, number>();
  #replaying = new Map<string, number>();

  constructor(max = 10_000) {
    this.max = max;
  }

  /** The `sinceTime` to resume from: the last line's time, if lines had times. */
  get lastTime(): string | undefined {
    return this.#lastTime || undefined;
  }

  /** Call before resubscribing with `sinceTime`: lines at that time already shown will be skipped once. */
  resuming(): void {
    this.#replaying = new Map(this.#atLast);
  }

  /** Adds raw lines (each may start with a timestamp); returns the lines that were new. */
  add(raw: string[]): LogLine[] {
    const added: LogLine[] = [];
    for (const r of raw) {
      const line = splitTimestamp(r);
      if (line.time) {
        const key = timeKey(line.time);
        if (this.#lastKey && key < this.#lastKey) continue;
        if (key === this.#lastKey) {
          const seen = this.#replaying.get(line.text) ?? 0;
          if (seen > 0) {
            this.#replaying.set(line.text, seen - 1);
            continue;
          }
        } else {
          this.#atLast.clear();
          this.#replaying.clear();
          this.#lastKey = key;
          this.#lastTime = line.time;
        }
        this.#atLast.set(line.text, (this.#atLast.get(line.text) ?? 0) + 1);
      }
      added.push(line);
      this.lines.push(line);
    }
    const over = this.lines.length - this.max;
    if (over > 0) {
      this.lines.splice(0, over);
      this.dropped += over;
    }
    return added;
  }

  clear(): void {
    this.lines = [];
    this.dropped = 0;
    this.#lastTime = '';
    this.#lastKey = '';
    this.#atLast.clear();
    this.#replaying.clear();
  }
}

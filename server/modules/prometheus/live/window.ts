// The points of one live graph: for every series, its value at each step of the window
// [T - range, T], where T is the latest step evaluated. Points sit at multiples of the step, so a
// series is a ring of slots indexed by t / step; values are kept as the strings Prometheus sent,
// so that snapshots and appends say exactly what query_range says.

export interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

export interface Series {
  metric: Record<string, string>;
  values: [number, string][];
}

export interface Append {
  /** Unix seconds. */
  t: number;
  result: Sample[];
}

interface Ring {
  metric: Record<string, string>;
  /** The labels sorted by name, for ordering series as Prometheus does. */
  sorted: [string, string][];
  /** slot → value at the step that slot last held; undefined: no point there. */
  values: (string | undefined)[];
  /** The step (t / step) of each slot's value, so that a slot from an older lap is no point. */
  steps: Float64Array;
  /** The latest step with a point: the ring is dropped once that leaves the window. */
  lastStep: number;
}

function sortedLabels(metric: Record<string, string>): [string, string][] {
  return Object.keys(metric)
    .sort()
    .map((name) => [name, metric[name]!]);
}

/** A canonical key for a label set: the same labels in any order give the same key. */
export function seriesKey(metric: Record<string, string>): string {
  return JSON.stringify(sortedLabels(metric));
}

/** Prometheus's order of label sets (labels.Compare): name by name, then value by value; a prefix first. */
export function compareLabels(a: readonly [string, string][], b: readonly [string, string][]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const [an, av] = a[i]!;
    const [bn, bv] = b[i]!;
    if (an !== bn) return an < bn ? -1 : 1;
    if (av !== bv) return av < bv ? -1 : 1;
  }
  return a.length - b.length;
}

export class LiveWindow {
  readonly stepMs: number;
  readonly rangeMs: number;
  /** Slots in the window: its range in steps, both ends included. */
  readonly slots: number;
  #series = new Map<string, Ring>();
  /** The latest step evaluated (in steps: t / step), or undefined before the first. */
  #last: number | undefined;
  #snapshot: { last: number; data: { resultType: 'matrix'; result: Series[] }; json?: string } | undefined;

  constructor(rangeMs: number, stepMs: number) {
    this.rangeMs = rangeMs;
    this.stepMs = stepMs;
    this.slots = Math.floor(rangeMs / stepMs) + 1;
  }

  /** The latest step evaluated, in Unix milliseconds; undefined before the first. */
  get lastMs(): number | undefined {
    return this.#last === undefined ? undefined : this.#last * this.stepMs;
  }

  get seriesCount(): number {
    return this.#series.size;
  }

  /** The first step of the window, in Unix milliseconds. */
  get firstMs(): number | undefined {
    return this.#last === undefined ? undefined : (this.#last - this.slots + 1) * this.stepMs;
  }

  /** Whether `tMs` is a step this window still holds (so appends after it can be told). */
  holds(tMs: number): boolean {
    return this.#last !== undefined && tMs % this.stepMs === 0 && tMs >= this.firstMs! && tMs <= this.lastMs!;
  }

  /**
   * Takes a query_range result for steps up to `untilMs` (each series' points at multiples of the
   * step). Steps after the window's last one become its new end; a step with no point of a series
   * is no point of it. Returns the appends for the steps that are new, in order.
   */
  takeRange(result: readonly Series[], fromMs: number, untilMs: number): Append[] {
    const from = Math.round(fromMs / this.stepMs);
    const until = Math.round(untilMs / this.stepMs);
    const firstNew = this.#last === undefined ? from : Math.max(from, this.#last + 1);
    const byStep = new Map<number, Sample[]>();
    for (const series of result) {
      const ring = this.#ring(series.metric);
      for (const [t, value] of series.values) {
        const step = Math.round((t * 1000) / this.stepMs);
        if (step < from || step > until) continue;
        this.#set(ring, step, value);
        if (step >= firstNew) {
          let samples = byStep.get(step);
          if (!samples) byStep.set(step, (samples = []));
          samples.push({ metric: series.metric, value: [t, value] });
        }
      }
    }
    const appends: Append[] = [];
    for (let step = firstNew; step <= until; step++) {
      appends.push({ t: (step * this.stepMs) / 1000, result: byStep.get(step) ?? [] });
    }
    if (this.#last === undefined || until > this.#last) this.#last = until;
    this.#prune();
    this.#snapshot = undefined;
    return appends;
  }

  /** Takes an append made elsewhere (the node that evaluates this graph). Returns false when it is not new. */
  takeAppend(append: Append): boolean {
    const step = Math.round((append.t * 1000) / this.stepMs);
    if (this.#last !== undefined && step <= this.#last) return false;
    for (const sample of append.result) this.#set(this.#ring(sample.metric), step, sample.value[1]);
    this.#last = step;
    this.#prune();
    this.#snapshot = undefined;
    return true;
  }

  /**
   * The `data` of a query_range answer for the window, series sorted by their labels as Prometheus
   * sorts them: made once per step however many viewers ask (do not change it).
   */
  snapshot(): { resultType: 'matrix'; result: Series[] } {
    if (this.#snapshot && this.#snapshot.last === this.#last) return this.#snapshot.data;
    const data = this.#buildSnapshot();
    this.#snapshot = { last: this.#last ?? -1, data };
    return data;
  }

  /** The snapshot as JSON, made once per step. */
  snapshotJson(): string {
    const data = this.snapshot();
    return (this.#snapshot!.json ??= JSON.stringify(data));
  }

  #buildSnapshot(): { resultType: 'matrix'; result: Series[] } {
    const result: Series[] = [];
    if (this.#last !== undefined) {
      const first = this.#last - this.slots + 1;
      for (const ring of [...this.#series.values()].sort((a, b) => compareLabels(a.sorted, b.sorted))) {
        const values: [number, string][] = [];
        for (let step = first; step <= this.#last; step++) {
          const value = this.#get(ring, step);
          if (value !== undefined) values.push([(step * this.stepMs) / 1000, value]);
        }
        if (values.length > 0) result.push({ metric: ring.metric, values });
      }
    }
    return { resultType: 'matrix', result };
  }

  /** The appends after `tMs`, up to the window's end (`tMs` must be a step the window holds). */
  appendsAfter(tMs: number): Append[] {
    const appends: Append[] = [];
    if (this.#last === undefined) return appends;
    for (let step = Math.round(tMs / this.stepMs) + 1; step <= this.#last; step++) {
      const result: Sample[] = [];
      for (const ring of this.#series.values()) {
        const value = this.#get(ring, step);
        if (value !== undefined) result.push({ metric: ring.metric, value: [(step * this.stepMs) / 1000, value] });
      }
      appends.push({ t: (step * this.stepMs) / 1000, result });
    }
    return appends;
  }

  #ring(metric: Record<string, string>): Ring {
    const sorted = sortedLabels(metric);
    const key = JSON.stringify(sorted);
    let ring = this.#series.get(key);
    if (!ring) {
      ring = { metric, sorted, values: new Array(this.slots), steps: new Float64Array(this.slots).fill(-1), lastStep: -Infinity };
      this.#series.set(key, ring);
    }
    return ring;
  }

  #set(ring: Ring, step: number, value: string): void {
    const slot = step % this.slots;
    ring.values[slot] = value;
    ring.steps[slot] = step;
    if (step > ring.lastStep) ring.lastStep = step;
  }

  #get(ring: Ring, step: number): string | undefined {
    const slot = step % this.slots;
    return ring.steps[slot] === step ? ring.values[slot] : undefined;
  }

  /** Series with no point left in the window go. */
  #prune(): void {
    if (this.#last === undefined) return;
    const first = this.#last - this.slots + 1;
    for (const [key, ring] of this.#series) if (ring.lastStep < first) this.#series.delete(key);
  }
}

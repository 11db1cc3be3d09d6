// A live graph's data in uPlot's columnar form, from the wire to the canvas: one timestamps array
// and one values array per series, never an object per point. A snapshot becomes the columns; an
// append pushes one timestamp and one value per series (null where a series has no point, a new
// series gets nulls for the times before it appeared); the window keeps `range` seconds.
import type { PromSample, PromSeries } from '../../../protocol/ui.ts';

export interface FrameSeries {
  /** `name{a="b", c="d"}`: the series' identity and its legend text. */
  key: string;
  labels: Record<string, string>;
  values: (number | null)[];
  /** Non-null values in the window; a series that reaches 0 leaves the graph. */
  present: number;
}

export interface LiveFrame {
  /** Seconds between points. */
  step: number;
  /** Seconds the window covers. */
  range: number;
  times: number[];
  series: FrameSeries[];
}

/** What an update did to the frame, so the graph knows whether to redraw or rebuild. */
export interface FrameChange {
  /** Points were added or removed. */
  data: boolean;
  /** Series came or went: the graph's series list must be rebuilt. */
  series: boolean;
}

/** Prometheus sample values are strings: "1.5", "NaN", "+Inf". Only finite numbers are drawn. */
export function sampleValue(text: string): number | null {
  const v = Number(text);
  return Number.isFinite(v) ? v : null;
}

export function seriesKey(labels: Record<string, string>): string {
  const name = labels.__name__ ?? '';
  const rest = Object.keys(labels)
    .filter((k) => k !== '__name__')
    .sort()
    .map((k) => `${k}=${JSON.stringify(labels[k])}`);
  if (rest.length === 0) return name || '{}';
  return `${name}{${rest.join(', ')}}`;
}

export function emptyFrame(range: number, step: number): LiveFrame {
  return { step, range, times: [], series: [] };
}

/** The most points a window holds: both ends of `[T-range, T]` included. */
export function windowPoints(frame: Pick<LiveFrame, 'range' | 'step'>): number {
  return Math.floor(frame.range / frame.step) + 1;
}

/**
 * The snapshot's matrix as columns on the step grid ending at `t`. A series' points go to the
 * slot of their timestamp; slots without a point are null (a gap in the line).
 */
export function frameFromSnapshot(result: PromSeries[], t: number, range: number, step: number): LiveFrame {
  const frame = emptyFrame(range, step);
  const count = windowPoints(frame);
  const start = t - (count - 1) * step;
  for (let i = 0; i < count; i++) frame.times.push(start + i * step);
  for (const s of result) {
    const values: (number | null)[] = new Array(count).fill(null);
    let present = 0;
    for (const [ts, text] of s.values) {
      const slot = Math.round((ts - start) / step);
      if (slot < 0 || slot >= count) continue;
      const v = sampleValue(text);
      if (values[slot] === null && v !== null) present++;
      values[slot] = v;
    }
    if (present > 0) frame.series.push({ key: seriesKey(s.metric), labels: s.metric, values, present });
  }
  // Leading empty slots (before any data) are kept: the x axis shows the whole window at once.
  return frame;
}

function pushRow(frame: LiveFrame, t: number, byKey: Map<string, { labels: Record<string, string>; value: number | null }>): boolean {
  let seriesChanged = false;
  const before = frame.times.length;
  frame.times.push(t);
  for (const s of frame.series) {
    const sample = byKey.get(s.key);
    const v = sample ? sample.value : null;
    s.values.push(v);
    if (v !== null) s.present++;
    byKey.delete(s.key);
  }
  for (const [key, { labels, value }] of byKey) {
    if (value === null) continue;
    const values: (number | null)[] = new Array(before).fill(null);
    values.push(value);
    frame.series.push({ key, labels, values, present: 1 });
    seriesChanged = true;
  }
  return seriesChanged;
}

function dropOldest(frame: LiveFrame, count: number): boolean {
  if (count <= 0) return false;
  frame.times.splice(0, count);
  let seriesChanged = false;
  for (const s of frame.series) {
    for (const v of s.values.splice(0, count)) if (v !== null) s.present--;
  }
  const kept = frame.series.filter((s) => s.present > 0);
  if (kept.length !== frame.series.length) {
    frame.series = kept;
    seriesChanged = true;
  }
  return seriesChanged;
}

/**
 * One append: the point of every series present at `t`. An append at or before the last time the
 * frame has (a replay after a reconnect) changes nothing; missed steps become null rows so the line
 * shows the gap. The window then drops what fell out of `[t-range, t]`.
 */
export function appendToFrame(frame: LiveFrame, t: number, result: PromSample[]): FrameChange {
  const last = frame.times[frame.times.length - 1];
  if (last !== undefined && t <= last) return { data: false, series: false };
  const byKey = new Map<string, { labels: Record<string, string>; value: number | null }>();
  for (const s of result) byKey.set(seriesKey(s.metric), { labels: s.metric, value: sampleValue(s.value[1]) });

  let seriesChanged = false;
  const capacity = windowPoints(frame);
  if (last !== undefined) {
    const missed = Math.round((t - last) / frame.step) - 1;
    if (missed >= capacity) {
      // Everything the frame holds is older than the new window: start over from this point.
      seriesChanged = frame.series.length > 0;
      frame.times = [];
      frame.series = [];
    } else {
      for (let i = 1; i <= missed; i++) seriesChanged = pushRow(frame, last + i * frame.step, new Map()) || seriesChanged;
    }
  }
  seriesChanged = pushRow(frame, t, byKey) || seriesChanged;
  const oldest = t - (capacity - 1) * frame.step;
  let drop = 0;
  while (drop < frame.times.length && frame.times[drop]! < oldest) drop++;
  seriesChanged = dropOldest(frame, drop) || seriesChanged;
  return { data: true, series: seriesChanged };
}

/** The frame as uPlot's AlignedData: the frame's own arrays, not copies. */
export function uplotData(frame: LiveFrame): [number[], ...(number | null)[][]] {
  return [frame.times, ...frame.series.map((s) => s.values)];
}

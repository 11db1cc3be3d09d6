// A live graph's columns: snapshot → one timestamps array and one values array per series;
// append → one timestamp and one value per series, series appearing and disappearing as nulls,
// within a bounded window; replays after a reconnect change nothing.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { PromSample, PromSeries } from '../../protocol/ui.ts';
import { appendToFrame, frameFromSnapshot, sampleValue, seriesKey, uplotData } from '../../web/src/lib/liveFrame.ts';

const a = { __name__: 'up', job: 'a' };
const b = { __name__: 'up', job: 'b' };
const sample = (metric: Record<string, string>, t: number, v: string): PromSample => ({ metric, value: [t, v] });

describe('live graph columns', () => {
  test('a snapshot becomes the step grid of the window with a values column per series', () => {
    const result: PromSeries[] = [
      { metric: a, values: [[100, '1'], [110, '2'], [120, '3']] },
      { metric: b, values: [[110, '5']] },
    ];
    const frame = frameFromSnapshot(result, 120, 30, 10);
    assert.deepEqual(frame.times, [90, 100, 110, 120]);
    assert.deepEqual(frame.series.map((s) => s.values), [[null, 1, 2, 3], [null, null, 5, null]]);
    assert.deepEqual(frame.series.map((s) => s.key), ['up{job="a"}', 'up{job="b"}']);
    const data = uplotData(frame);
    assert.equal(data[0], frame.times, 'uPlot gets the frame’s own arrays, not copies');
    assert.equal(data[1], frame.series[0]!.values);
  });

  test('an append pushes one time and one value per series; a series absent at t gets null', () => {
    const frame = frameFromSnapshot([{ metric: a, values: [[100, '1']] }, { metric: b, values: [[100, '2']] }], 100, 20, 10);
    const change = appendToFrame(frame, 110, [sample(a, 110, '7')]);
    assert.deepEqual(change, { data: true, series: false });
    assert.deepEqual(frame.times, [90, 100, 110]);
    assert.deepEqual(frame.series.map((s) => s.values), [[null, 1, 7], [null, 2, null]]);
  });

  test('a new series starts with nulls for the times before it; one with no point left in the window goes', () => {
    const frame = frameFromSnapshot([{ metric: a, values: [[100, '1']] }], 100, 20, 10);
    let change = appendToFrame(frame, 110, [sample(a, 110, '2'), sample(b, 110, '9')]);
    assert.equal(change.series, true);
    assert.deepEqual(frame.series[1]!.values, [null, null, 9]);
    // Series a stops; its last point falls out of the 20 s window two steps later.
    appendToFrame(frame, 120, [sample(b, 120, '8')]);
    assert.deepEqual(frame.times, [100, 110, 120], 'the window stays bounded at range/step + 1 points');
    assert.deepEqual(frame.series.map((s) => s.key), ['up{job="a"}', 'up{job="b"}']);
    change = appendToFrame(frame, 130, [sample(b, 130, '7')]);
    assert.deepEqual(frame.times, [110, 120, 130]);
    assert.equal(change.series, false, 'a still has its point at 110');
    assert.deepEqual(frame.series.map((s) => s.key), ['up{job="a"}', 'up{job="b"}'], 'a still has 2 at 110');
    change = appendToFrame(frame, 140, [sample(b, 140, '6')]);
    assert.equal(change.series, true);
    assert.deepEqual(frame.series.map((s) => s.key), ['up{job="b"}']);
    assert.deepEqual(frame.series[0]!.values, [8, 7, 6]);
    for (const s of frame.series) assert.equal(s.values.length, frame.times.length);
  });

  test('a replayed or older append changes nothing; missed steps become null rows', () => {
    const frame = frameFromSnapshot([{ metric: a, values: [[100, '1']] }], 100, 60, 10);
    assert.deepEqual(appendToFrame(frame, 100, [sample(a, 100, '5')]), { data: false, series: false });
    assert.deepEqual(appendToFrame(frame, 90, [sample(a, 90, '5')]), { data: false, series: false });
    appendToFrame(frame, 130, [sample(a, 130, '4')]);
    assert.deepEqual(frame.times.slice(-4), [100, 110, 120, 130]);
    assert.deepEqual(frame.series[0]!.values.slice(-4), [1, null, null, 4]);
  });

  test('a gap longer than the window starts the frame over at the new point', () => {
    const frame = frameFromSnapshot([{ metric: a, values: [[100, '1']] }], 100, 20, 10);
    appendToFrame(frame, 500, [sample(b, 500, '3')]);
    assert.deepEqual(frame.times, [500]);
    assert.deepEqual(frame.series.map((s) => [s.key, s.values]), [['up{job="b"}', [3]]]);
  });

  test('appends without a snapshot (resumed with after) build the frame from nothing', () => {
    const frame = frameFromSnapshot([], 100, 30, 10);
    assert.equal(frame.series.length, 0);
    appendToFrame(frame, 110, [sample(a, 110, '1')]);
    assert.deepEqual(frame.times, [80, 90, 100, 110]);
    assert.deepEqual(frame.series[0]!.values, [null, null, null, 1]);
  });

  test('sample values: NaN and infinities are not drawn; labels print as Prometheus does', () => {
    assert.equal(sampleValue('1.5e3'), 1500);
    assert.equal(sampleValue('NaN'), null);
    assert.equal(sampleValue('+Inf'), null);
    assert.equal(seriesKey({ job: 'x', __name__: 'm', a: 'q"uote' }), 'm{a="q\\"uote", job="x"}');
    assert.equal(seriesKey({}), '{}');
  });

  test('an hour at 1 s stays 3,601 points per series after many appends', () => {
    const frame = frameFromSnapshot([{ metric: a, values: [[1000, '1']] }], 1000, 3600, 1);
    for (let t = 1001; t <= 9000; t++) appendToFrame(frame, t, [sample(a, t, String(t))]);
    assert.equal(frame.times.length, 3601);
    assert.equal(frame.series[0]!.values.length, 3601);
    assert.equal(frame.times[0], 9000 - 3600);
    assert.equal(frame.series[0]!.values[3600], 9000);
  });
});

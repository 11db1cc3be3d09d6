// A live graph's window and its viewers without the network: points at multiples of the step,
// appends only for new steps, series that leave the window go, snapshots in Prometheus's order,
// and a viewer that falls behind is told so before it is dropped.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { LiveViewer, type LiveOutput } from '../../server/modules/prometheus/live/viewers.ts';
import { compareLabels, LiveWindow } from '../../server/modules/prometheus/live/window.ts';
import type { Append } from '../../server/modules/prometheus/live/window.ts';
import { leaseMs } from '../../server/modules/prometheus/live/subscription.ts';

const series = (name: string, points: [number, string][]) => ({ metric: { __name__: 'm', name }, values: points });

describe('the window of a live graph', () => {
  test('a first range becomes the window; later ones add only the steps after its end, as appends', () => {
    const w = new LiveWindow(4000, 1000); // 5 slots: t-4 … t
    const first = w.takeRange([series('a', [[10, '1'], [11, '2'], [12, '3']])], 8000, 12000);
    assert.equal(w.lastMs, 12000);
    assert.deepEqual(first.map((a) => a.t), [8, 9, 10, 11, 12]);
    const next = w.takeRange([series('a', [[12, '3'], [13, '4'], [14, '5']]), series('b', [[14, '9']])], 12000, 14000);
    assert.deepEqual(next, [
      { t: 13, result: [{ metric: { __name__: 'm', name: 'a' }, value: [13, '4'] }] },
      { t: 14, result: [{ metric: { __name__: 'm', name: 'a' }, value: [14, '5'] }, { metric: { __name__: 'm', name: 'b' }, value: [14, '9'] }] },
    ]);
    assert.deepEqual(w.snapshot().result, [series('a', [[10, '1'], [11, '2'], [12, '3'], [13, '4'], [14, '5']]), series('b', [[14, '9']])]);
    assert.equal(w.holds(10_000), true);
    assert.equal(w.holds(9_000), false, 'step 9 left the window');
    assert.deepEqual(w.appendsAfter(13_000).map((a) => a.t), [14]);
  });

  test('appends from elsewhere are taken once, in order; a series with no point left in the window goes', () => {
    const w = new LiveWindow(2000, 1000);
    w.takeRange([series('a', [[1, '1']]), series('b', [[1, '7']])], 0, 1000);
    const append = (t: number, names: string[]): Append => ({ t, result: names.map((name) => ({ metric: { __name__: 'm', name }, value: [t, String(t)] as [number, string] })) });
    assert.equal(w.takeAppend(append(2, ['a'])), true);
    assert.equal(w.takeAppend(append(2, ['a'])), false, 'the same step again is no news');
    assert.equal(w.takeAppend(append(1, ['a'])), false, 'nor an older one');
    w.takeAppend(append(3, ['a']));
    w.takeAppend(append(4, ['a']));
    assert.deepEqual(w.snapshot().result.map((s) => s.metric.name), ['a'], 'b had no point in [2, 4]');
    assert.equal(w.seriesCount, 1);
  });

  test('a slot of an older lap is no point of the window', () => {
    const w = new LiveWindow(2000, 1000); // 3 slots
    w.takeRange([series('a', [[0, 'old']])], 0, 0);
    w.takeRange([series('b', [[3, 'x']])], 1000, 3000); // slot of step 0 is the slot of step 3
    assert.deepEqual(w.snapshot().result, [series('b', [[3, 'x']])]);
  });

  test("series are ordered as Prometheus orders label sets", () => {
    assert.ok(compareLabels([['a', 'b']], [['a', 'b'], ['c', 'd']]) < 0, 'a prefix first');
    assert.ok(compareLabels([['a', 'x']], [['b', 'a']]) < 0, 'by name first');
    assert.ok(compareLabels([['a', 'a']], [['a', 'b']]) < 0, 'then by value');
  });
});

describe('a viewer of a live graph', () => {
  class Recorder implements LiveOutput {
    out: string[] = [];
    backlog = 0;
    gone = false;
    onGone() {
      return () => undefined;
    }
    snapshot(tMs: number) {
      this.out.push(`snapshot ${tMs / 1000}`);
    }
    append(append: Append) {
      this.out.push(`append ${append.t}`);
    }
    error(tMs: number | undefined, errorType: string, _error: string, final: boolean) {
      this.out.push(`error ${tMs === undefined ? '-' : tMs / 1000} ${errorType}${final ? ' final' : ''}`);
    }
    end() {
      this.out.push('end');
    }
  }
  const window = () => {
    const w = new LiveWindow(10_000, 1000);
    w.takeRange([series('a', [[5, '1'], [6, '2'], [7, '3']])], 0, 7000);
    return w;
  };

  test('catches up with a snapshot, or with the appends after its Last-Event-ID; skips appends it has', () => {
    const fresh = new Recorder();
    const v = new LiveViewer(fresh, undefined);
    v.send({ payload: { kind: 'append', append: { t: 6, result: [] } }, bytes: 1 });
    v.send({ payload: { kind: 'ready', window: window() }, bytes: 0 });
    v.send({ payload: { kind: 'append', append: { t: 7, result: [] } }, bytes: 1 });
    v.send({ payload: { kind: 'append', append: { t: 8, result: [] } }, bytes: 1 });
    assert.deepEqual(fresh.out, ['snapshot 7', 'append 8']);
    const back = new Recorder();
    new LiveViewer(back, 5000).send({ payload: { kind: 'ready', window: window() }, bytes: 0 });
    assert.deepEqual(back.out, ['append 6', 'append 7']);
  });

  test('one that fell behind gets a final error event before its stream ends', () => {
    const slow = new Recorder();
    const v = new LiveViewer(slow, undefined);
    v.send({ payload: { kind: 'ready', window: window() }, bytes: 0 });
    v.end('slow');
    assert.deepEqual(slow.out, ['snapshot 7', 'error 7 viewer_too_slow final', 'end']);
  });
});

describe('the lease of a live graph', () => {
  test('it lasts until half a step after the next tick, however late the renewal ran', () => {
    // Ticks at 10 s, 11 s, … (a 1 s step): renewed on time or 400 ms late, it ends at 11.5 s,
    // so a holder that dies is taken over at the tick of 12 s, two steps after its last one.
    assert.equal(10_000 + leaseMs(11_000, 1000, 10_000), 11_500);
    assert.equal(10_400 + leaseMs(11_000, 1000, 10_400), 11_500);
    // A renewal so late that the lease would already be over still lasts half a step.
    assert.equal(leaseMs(11_000, 1000, 11_300), 500);
  });
});

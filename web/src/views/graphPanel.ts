// One live graph panel: query editor, range and step pickers, a uPlot chart fed from the live
// subscription in columnar form, a legend that toggles series and shows hover values, and the
// Prometheus error in its own words when the query or the upstream fails.
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import type { SubscribeReply, UiUpdate } from '../../../protocol/ui.ts';
import { agentBase, apiFetch } from '../api.ts';
import type { AppContext } from '../context.ts';
import { traceBadge } from '../context.ts';
import { clear, h, option, uid } from '../dom.ts';
import { appendToFrame, emptyFrame, frameFromSnapshot, type LiveFrame, uplotData } from '../lib/liveFrame.ts';
import type { PanelLayout } from '../lib/layout.ts';
import { Trace } from '../lib/traceparent.ts';
import { formatValue, type Unit, unitLabel, unitOf } from '../lib/units.ts';
import { createQueryEditor, type QueryEditor } from './promqlEditor.ts';

export const RANGES = ['5m', '15m', '30m', '1h', '3h', '6h', '12h', '24h'];
export const STEPS = ['1s', '5s', '10s', '15s', '30s', '1m', '5m', '15m'];

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#7f7f7f', '#bcbd22'];

function seconds(d: string): number {
  const m = /^(\d+)(s|m|h)$/.exec(d);
  if (!m) return Number(d);
  return Number(m[1]) * { s: 1, m: 60, h: 3600 }[m[2] as 's' | 'm' | 'h'];
}

export interface PanelEvents {
  changed(): void;
  remove(): void;
}

export class GraphPanel {
  readonly element: HTMLElement;
  layout: PanelLayout;
  readonly #ctx: AppContext;
  readonly #events: PanelEvents;
  readonly #editor: QueryEditor;
  readonly #rangeSelect: HTMLSelectElement;
  readonly #stepSelect: HTMLSelectElement;
  readonly #status: HTMLElement;
  readonly #error: HTMLElement;
  readonly #chartBox: HTMLElement;
  readonly #legend: HTMLElement;
  readonly #heading: HTMLElement;
  #frame: LiveFrame | undefined;
  #plot: uPlot | undefined;
  #unit: Unit = 'none';
  #hidden = new Set<string>();
  #legendValues: HTMLElement[] = [];
  #unsubscribe: (() => void) | undefined;
  #trace: Trace | undefined;
  #drawPending = false;
  #rebuild = false;
  #resize: ResizeObserver;

  constructor(ctx: AppContext, layout: PanelLayout, index: number, events: PanelEvents) {
    this.#ctx = ctx;
    this.layout = { ...layout };
    this.#events = events;
    const headingId = uid('graph-heading');
    this.#heading = h('h3', { id: headingId }, `Graph ${index + 1}`);
    const editorBox = h('div', { class: 'query' });
    const rangeId = uid('range');
    const stepId = uid('step');
    this.#rangeSelect = h('select', { id: rangeId, onchange: () => this.run() }, ...RANGES.map((r) => option(r, r, r === layout.range)));
    this.#stepSelect = h('select', { id: stepId, onchange: () => this.run() }, ...STEPS.map((s) => option(s, s, s === layout.step)));
    if (!RANGES.includes(layout.range)) this.#rangeSelect.append(option(layout.range, layout.range, true));
    if (!STEPS.includes(layout.step)) this.#stepSelect.append(option(layout.step, layout.step, true));
    this.#status = h('p', { class: 'panel-status', role: 'status' });
    this.#error = h('p', { class: 'error', role: 'alert', hidden: true });
    this.#chartBox = h('div', { class: 'chart', role: 'img', 'aria-label': 'graph' });
    this.#legend = h('ul', { class: 'legend', 'aria-label': 'Series' });
    this.element = h(
      'section',
      { class: 'panel', 'aria-labelledby': headingId },
      h('div', { class: 'panel-head' }, this.#heading, h('button', { type: 'button', class: 'quiet', onclick: () => this.#events.remove() }, 'Remove graph')),
      editorBox,
      h(
        'div',
        { class: 'panel-controls' },
        h('label', { for: rangeId }, 'Range '),
        this.#rangeSelect,
        h('label', { for: stepId }, 'Step '),
        this.#stepSelect,
        h('button', { type: 'button', onclick: () => this.run() }, 'Run'),
      ),
      this.#error,
      this.#chartBox,
      this.#legend,
      this.#status,
    );
    this.#editor = createQueryEditor(editorBox, {
      doc: layout.query,
      label: `PromQL query of graph ${index + 1}`,
      prometheusUrl: () => agentBase(this.#ctx.layout().agent ?? '', 'prometheus'),
      // Each completion request is its own action (a keystroke), so its own trace.
      fetchFn: (input, init) => apiFetch(String(input), new Trace(), init),
      onRun: () => this.run(),
      nonce: ctx.nonce,
    });
    this.#resize = new ResizeObserver(() => this.#plot?.setSize(this.#size()));
    this.#resize.observe(this.#chartBox);
  }

  renumber(index: number): void {
    this.#heading.textContent = `Graph ${index + 1}`;
  }

  focus(): void {
    this.#editor.focus();
  }

  /** (Re)starts the live subscription with what the editor and pickers say now: the operator's click. */
  run(): void {
    const query = this.#editor.value().trim();
    this.layout = { query, range: this.#rangeSelect.value, step: this.#stepSelect.value };
    this.#events.changed();
    this.#stop();
    this.#frame = undefined;
    this.#destroyPlot();
    clear(this.#legend);
    this.#showError(undefined);
    const agentId = this.#ctx.layout().agent;
    if (!query) return this.#setStatus('Type a query and press Enter.');
    if (!agentId) return this.#setStatus('Pick an agent first.');
    this.#unit = unitOf(query);
    const trace = this.#ctx.action(`graph ${query}`);
    this.#trace = trace;
    const range = seconds(this.layout.range);
    const step = seconds(this.layout.step);
    this.#setStatus('Loading…');
    this.#unsubscribe = this.#ctx.conn.subscribe({
      request: () => ({
        kind: 'live',
        traceparent: trace.traceparent(),
        agentId,
        query,
        range: this.layout.range,
        step: this.layout.step,
        // After a reconnect: the appends since the last point, not a new snapshot.
        after: this.#frame?.times[this.#frame.times.length - 1],
      }),
      reply: (r) => this.#reply(r),
      update: (u) => this.#update(u, range, step),
    });
  }

  #reply(r: SubscribeReply): void {
    if (r.ok) {
      this.#setStatus(undefined, r.traceId);
      return;
    }
    this.#showError(r.error);
    this.#setStatus(`Refused (${r.status}).`, r.traceId);
  }

  #update(u: UiUpdate, range: number, step: number): void {
    switch (u.type) {
      case 'snapshot':
        this.#frame = frameFromSnapshot(u.data.result, u.t, range, step);
        this.#showError(undefined);
        this.#schedule(true);
        break;
      case 'append': {
        this.#frame ??= emptyFrame(range, step);
        const change = appendToFrame(this.#frame, u.data.t, u.data.result);
        this.#showError(undefined);
        if (change.data) this.#schedule(change.series);
        break;
      }
      case 'error':
        // The Prometheus envelope's words, as the Prometheus UI shows them.
        this.#showError(`${u.errorType}: ${u.error}${u.final ? '' : u.reconnecting ? ' (waiting for the agent to return)' : ' (retrying at the next step)'}`);
        if (u.final) this.#setStatus('The live graph ended.', this.#trace?.traceId);
        break;
      default:
        break;
    }
  }

  #schedule(rebuild: boolean): void {
    this.#rebuild ||= rebuild;
    if (this.#drawPending) return;
    this.#drawPending = true;
    requestAnimationFrame(() => {
      this.#drawPending = false;
      const rebuildNow = this.#rebuild || !this.#plot;
      this.#rebuild = false;
      this.#draw(rebuildNow);
    });
  }

  #size(): { width: number; height: number } {
    return { width: Math.max(200, this.#chartBox.clientWidth), height: 240 };
  }

  #draw(rebuild: boolean): void {
    const frame = this.#frame;
    if (!frame) return;
    this.#chartBox.dataset.points = String(frame.times.length);
    this.#chartBox.dataset.series = String(frame.series.length);
    this.#chartBox.dataset.lastT = String(frame.times[frame.times.length - 1] ?? '');
    if (!rebuild && this.#plot) {
      this.#plot.setData(uplotData(frame));
      return;
    }
    this.#destroyPlot();
    const unit = this.#unit;
    const opts: uPlot.Options = {
      ...this.#size(),
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true } },
      series: [
        {},
        ...frame.series.map((s, i) => ({
          label: s.key,
          stroke: PALETTE[i % PALETTE.length],
          width: 1.5,
          show: !this.#hidden.has(s.key),
          spanGaps: false,
          value: (_u: uPlot, v: number | null) => formatValue(v, unit),
        })),
      ],
      axes: [
        {},
        {
          size: 64,
          label: unitLabel(unit) || undefined,
          values: (_u, splits) => splits.map((v) => formatValue(v, unit)),
        },
      ],
      hooks: { setCursor: [(u) => this.#showCursorValues(u)] },
    };
    this.#plot = new uPlot(opts, uplotData(frame), this.#chartBox);
    this.#renderLegend(frame);
  }

  #renderLegend(frame: LiveFrame): void {
    clear(this.#legend);
    this.#legendValues = [];
    frame.series.forEach((s, i) => {
      const swatch = h('span', { class: 'swatch', 'aria-hidden': 'true' });
      swatch.style.background = PALETTE[i % PALETTE.length]!;
      const value = h('span', { class: 'value' });
      this.#legendValues.push(value);
      const button = h(
        'button',
        {
          type: 'button',
          'aria-pressed': String(!this.#hidden.has(s.key)),
          title: 'Show or hide this series',
          onclick: () => {
            const show = this.#hidden.has(s.key);
            if (show) this.#hidden.delete(s.key);
            else this.#hidden.add(s.key);
            button.setAttribute('aria-pressed', String(show));
            this.#plot?.setSeries(i + 1, { show });
          },
        },
        swatch,
        h('span', { class: 'label' }, s.key),
        value,
      );
      this.#legend.append(h('li', {}, button));
    });
  }

  #showCursorValues(u: uPlot): void {
    const idx = u.cursor.idx;
    const frame = this.#frame;
    if (!frame) return;
    frame.series.forEach((s, i) => {
      const el = this.#legendValues[i];
      if (el) el.textContent = idx === null || idx === undefined ? '' : formatValue(s.values[idx], this.#unit);
    });
  }

  #showError(text: string | undefined): void {
    if (this.#error.textContent === (text ?? '') && this.#error.hidden === !text) return;
    this.#error.textContent = text ?? '';
    this.#error.hidden = !text;
  }

  #setStatus(text: string | undefined, traceId?: string): void {
    clear(this.#status, text ?? '', traceId ? ' ' : '', traceId ? traceBadge(this.#ctx.traceUiUrl, traceId) : null);
  }

  #destroyPlot(): void {
    this.#plot?.destroy();
    this.#plot = undefined;
  }

  #stop(): void {
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
  }

  destroy(): void {
    this.#stop();
    this.#destroyPlot();
    this.#resize.disconnect();
    this.#editor.destroy();
  }
}

// A live Kubernetes table: list, then watch, over one subscription. Rows appear, change with a
// brief highlight and disappear; sorting and a filter; only the rows in view are in the DOM
// (virtualised, fixed row height), so 5,000 pods cost what a screenful does. Updates are folded
// into one render per animation frame.
import type { KubeObject, SubscribeReply, UiUpdate } from '../../../protocol/ui.ts';
import type { AppContext } from '../context.ts';
import { traceBadge } from '../context.ts';
import { clear, h } from '../dom.ts';
import { cellText, type Column, compareBy, filterWords, matchesFilter, objectKey } from '../lib/kubeColumns.ts';
import type { Trace } from '../lib/traceparent.ts';
import { rowWindow } from '../lib/virtualWindow.ts';

export const ROW_HEIGHT = 30;
const HIGHLIGHT_MS = 1_500;

interface Row {
  obj: KubeObject;
  changedAt: number;
}

export interface LiveTableOptions {
  agentId: string;
  path: string;
  columns: Column[];
  label: string;
  filter: string;
  trace: Trace;
  onOpen(obj: KubeObject): void;
  onFilter(text: string): void;
}

export class LiveTable {
  readonly element: HTMLElement;
  readonly #ctx: AppContext;
  readonly #o: LiveTableOptions;
  readonly #rows = new Map<string, Row>();
  /** The list being received (pages until `last`); swapped in whole so a relist does not flicker. */
  #pending: Map<string, Row> | undefined;
  #resourceVersion: string | undefined;
  #sorted: Row[] = [];
  #dirty = true;
  #framePending = false;
  #sort: { column: Column; descending: boolean };
  #words: string[];
  readonly #scroller: HTMLElement;
  readonly #body: HTMLTableSectionElement;
  readonly #head: HTMLTableRowElement;
  readonly #status: HTMLElement;
  readonly #count: HTMLElement;
  readonly #error: HTMLElement;
  #unsubscribe: () => void;
  #highlightTimer: ReturnType<typeof setTimeout> | undefined;
  #loaded = false;
  #ageTimer: ReturnType<typeof setInterval>;
  readonly #resize: ResizeObserver;

  constructor(ctx: AppContext, o: LiveTableOptions) {
    this.#ctx = ctx;
    this.#o = o;
    this.#sort = { column: o.columns[0]!, descending: false };
    this.#words = filterWords(o.filter);
    this.#head = h('tr', {});
    this.#body = h('tbody');
    this.#status = h('p', { class: 'panel-status', role: 'status' });
    this.#count = h('span', { class: 'count', 'aria-live': 'polite' });
    this.#error = h('p', { class: 'error', role: 'alert', hidden: true });
    const filter = h('input', {
      type: 'search',
      id: 'table-filter',
      value: o.filter,
      placeholder: 'Filter rows',
      autocomplete: 'off',
      oninput: () => {
        this.#words = filterWords(filter.value);
        this.#o.onFilter(filter.value);
        this.#invalidate();
      },
    });
    const table = h('table', { class: 'live', 'aria-label': o.label }, h('thead', {}, this.#head), this.#body);
    this.#scroller = h('div', { class: 'table-scroll', tabindex: 0, role: 'region', 'aria-label': `${o.label}, scrollable` }, table);
    this.#scroller.addEventListener('scroll', () => this.#render(), { passive: true });
    this.element = h(
      'div',
      { class: 'live-table' },
      h('div', { class: 'table-tools' }, h('label', { for: 'table-filter' }, 'Filter '), filter, this.#count),
      this.#error,
      this.#scroller,
      this.#status,
    );
    this.#renderHead();
    this.#setStatus('Listing…');
    const trace = o.trace;
    this.#unsubscribe = ctx.conn.subscribe({
      request: () => ({
        kind: 'kubernetes',
        traceparent: trace.traceparent(),
        agentId: o.agentId,
        path: o.path,
        // After a reconnect: watch on from the last version seen instead of listing again.
        resourceVersion: this.#resourceVersion,
      }),
      reply: (r) => this.#reply(r),
      update: (u) => this.#update(u),
    });
    this.#ageTimer = setInterval(() => this.#render(), 10_000);
    this.#resize = new ResizeObserver(() => this.#render());
    this.#resize.observe(this.#scroller);
  }

  get rowCount(): number {
    return this.#rows.size;
  }

  #reply(r: SubscribeReply): void {
    if (r.ok) this.#setStatus(this.#loaded ? 'Watching.' : 'Listing…', r.traceId);
    else {
      this.#showError(r.error);
      this.#setStatus(`Refused (${r.status}).`, r.traceId);
    }
  }

  #update(u: UiUpdate): void {
    const now = Date.now();
    switch (u.type) {
      case 'list': {
        if (u.reset || !this.#pending) this.#pending = new Map();
        for (const obj of u.items) this.#pending.set(objectKey(obj), { obj, changedAt: 0 });
        this.#resourceVersion = u.resourceVersion;
        if (u.last) {
          // A relist after a 410: rows that changed meanwhile are highlighted like watch changes.
          const before = this.#rows;
          for (const [k, row] of this.#pending) {
            const old = before.get(k);
            if (this.#loaded && (!old || old.obj.metadata.resourceVersion !== row.obj.metadata.resourceVersion)) row.changedAt = now;
          }
          this.#rows.clear();
          for (const [k, row] of this.#pending) this.#rows.set(k, row);
          this.#pending = undefined;
          this.#loaded = true;
          this.#showError(undefined);
          this.#setStatus('Watching.', undefined, true);
          this.#invalidate();
        }
        break;
      }
      case 'events':
        for (const e of u.events) {
          const k = objectKey(e.object);
          if (e.type === 'DELETED') this.#rows.delete(k);
          else this.#rows.set(k, { obj: e.object, changedAt: now });
        }
        this.#resourceVersion = u.resourceVersion;
        this.#showError(undefined);
        this.#invalidate();
        this.#scheduleHighlightEnd();
        break;
      case 'error':
        this.#showError(`${u.error}${u.final ? '' : u.reconnecting ? ' (waiting for the agent to return)' : ''}`);
        if (u.final) this.#setStatus('The watch ended.');
        break;
      default:
        break;
    }
  }

  #scheduleHighlightEnd(): void {
    clearTimeout(this.#highlightTimer);
    this.#highlightTimer = setTimeout(() => this.#render(), HIGHLIGHT_MS + 50);
  }

  #invalidate(): void {
    this.#dirty = true;
    if (this.#framePending) return;
    this.#framePending = true;
    requestAnimationFrame(() => {
      this.#framePending = false;
      this.#render();
    });
  }

  #renderHead(): void {
    clear(this.#head);
    for (const c of this.#o.columns) {
      const active = this.#sort.column === c;
      const th = h(
        'th',
        { scope: 'col', class: `col-${c.id}`, 'aria-sort': active ? (this.#sort.descending ? 'descending' : 'ascending') : 'none' },
        h(
          'button',
          {
            type: 'button',
            class: 'sort',
            onclick: () => {
              this.#sort = { column: c, descending: active ? !this.#sort.descending : false };
              this.#renderHead();
              this.#invalidate();
              (this.#head.querySelector(`.col-${c.id} button`) as HTMLButtonElement | null)?.focus();
            },
          },
          c.title,
          active ? (this.#sort.descending ? ' ▼' : ' ▲') : '',
        ),
      );
      this.#head.append(th);
    }
  }

  #render(): void {
    const now = Date.now();
    if (this.#dirty) {
      const rows: Row[] = [];
      for (const row of this.#rows.values()) if (matchesFilter(this.#o.columns, row.obj, this.#words, now)) rows.push(row);
      const cmp = compareBy(this.#sort.column, this.#sort.descending, now);
      rows.sort((a, b) => cmp(a.obj, b.obj));
      this.#sorted = rows;
      this.#dirty = false;
      this.#count.textContent = `${rows.length} of ${this.#rows.size} rows`;
    }
    const win = rowWindow({
      scrollTop: this.#scroller.scrollTop,
      viewportHeight: this.#scroller.clientHeight,
      rowHeight: ROW_HEIGHT,
      rowCount: this.#sorted.length,
    });
    const colspan = this.#o.columns.length;
    const out: HTMLTableRowElement[] = [];
    const spacer = (height: number) => {
      const tr = h('tr', { class: 'spacer', 'aria-hidden': 'true' }, h('td', { colspan }));
      tr.style.height = `${height}px`;
      return tr;
    };
    if (win.padTop > 0) out.push(spacer(win.padTop));
    for (let i = win.start; i < win.end; i++) {
      const row = this.#sorted[i]!;
      const changed = now - row.changedAt < HIGHLIGHT_MS;
      const tr = h('tr', { class: changed ? 'changed' : undefined, 'data-key': objectKey(row.obj), 'aria-rowindex': i + 2 });
      this.#o.columns.forEach((c, ci) => {
        const text = cellText(c, row.obj, now);
        if (ci === 0) {
          tr.append(h('td', { class: `col-${c.id}` }, h('button', { type: 'button', class: 'link', onclick: () => this.#o.onOpen(row.obj) }, text)));
        } else {
          tr.append(h('td', { class: `col-${c.id}${c.numeric ? ' num' : ''}` }, text));
        }
      });
      out.push(tr);
    }
    if (win.padBottom > 0) out.push(spacer(win.padBottom));
    // Keep keyboard focus on the same object's button when rows are redrawn.
    const focusedKey = (document.activeElement?.closest('tr') as HTMLElement | null)?.dataset.key;
    this.#body.replaceChildren(...out);
    if (focusedKey && this.#body.contains(document.activeElement) === false) {
      (this.#body.querySelector(`tr[data-key="${CSS.escape(focusedKey)}"] button`) as HTMLButtonElement | null)?.focus({ preventScroll: true });
    }
    this.#body.parentElement?.setAttribute('aria-rowcount', String(this.#sorted.length + 1));
  }

  #showError(text: string | undefined): void {
    this.#error.textContent = text ?? '';
    this.#error.hidden = !text;
  }

  #setStatus(text: string, traceId?: string, keepTrace = false): void {
    const badge = this.#status.querySelector('.trace');
    clear(this.#status, text);
    if (traceId) this.#status.append(' ', traceBadge(this.#ctx.traceUiUrl, traceId));
    else if (keepTrace && badge) this.#status.append(' ', badge);
  }

  destroy(): void {
    this.#unsubscribe();
    clearTimeout(this.#highlightTimer);
    clearInterval(this.#ageTimer);
    this.#resize.disconnect();
  }
}

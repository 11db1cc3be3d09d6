// A pod's log: the last 500 lines at once, then new lines as they are written, over the tab's
// one connection. Pause stops the view, not the follow (lines keep arriving and show on resume);
// a container picker for pods with several. After a reconnect the follow resumes from the last
// line's timestamp, without repeating lines.
import type { KubeObject, SubscribeReply, UiUpdate } from '../../../protocol/ui.ts';
import type { AppContext } from '../context.ts';
import { traceBadge } from '../context.ts';
import { clear, h, option, uid } from '../dom.ts';
import { LogBuffer } from '../lib/logLines.ts';
import type { Trace } from '../lib/traceparent.ts';

const TAIL_LINES = 500;
const MAX_LINES = 10_000;

function containersOf(pod: KubeObject): string[] {
  const spec = pod.spec as { containers?: { name: string }[]; initContainers?: { name: string }[] } | undefined;
  return [...(spec?.containers ?? []), ...(spec?.initContainers ?? [])].map((c) => c.name);
}

export class LogView {
  readonly element: HTMLElement;
  readonly #ctx: AppContext;
  readonly #pod: KubeObject;
  readonly #agentId: string;
  readonly #buffer = new LogBuffer(MAX_LINES);
  readonly #pre: HTMLElement;
  readonly #status: HTMLElement;
  readonly #error: HTMLElement;
  readonly #pause: HTMLButtonElement;
  readonly #picker: HTMLSelectElement;
  #paused = false;
  #unseen = 0;
  #domLines: number[] = [];
  #unsubscribe: (() => void) | undefined;
  #ended = false;

  constructor(ctx: AppContext, agentId: string, pod: KubeObject, trace: Trace) {
    this.#ctx = ctx;
    this.#pod = pod;
    this.#agentId = agentId;
    const containers = containersOf(pod);
    const pickerId = uid('container');
    this.#picker = h('select', { id: pickerId, onchange: () => this.#start(ctx.action(`logs ${pod.metadata.name}`)) }, ...containers.map((c, i) => option(c, c, i === 0)));
    this.#pause = h('button', { type: 'button', 'aria-pressed': 'false', onclick: () => this.#togglePause() }, 'Pause');
    this.#pre = h('pre', { class: 'log', tabindex: 0, role: 'log', 'aria-live': 'off', 'aria-label': `Log of ${pod.metadata.name}` });
    this.#status = h('p', { class: 'panel-status', role: 'status' });
    this.#error = h('p', { class: 'error', role: 'alert', hidden: true });
    this.element = h(
      'div',
      { class: 'logs' },
      h('div', { class: 'table-tools' }, h('label', { for: pickerId }, 'Container '), this.#picker, this.#pause),
      this.#error,
      this.#pre,
      this.#status,
    );
    this.#start(trace);
  }

  #start(trace: Trace): void {
    this.#unsubscribe?.();
    this.#buffer.clear();
    this.#pre.replaceChildren();
    this.#domLines = [];
    this.#unseen = 0;
    this.#ended = false;
    this.#showError(undefined);
    const container = this.#picker.value || undefined;
    let first = true;
    this.#unsubscribe = this.#ctx.conn.subscribe({
      request: () => {
        const since = first ? undefined : this.#buffer.lastTime;
        if (!first && since) this.#buffer.resuming();
        first = false;
        return {
          kind: 'logs',
          traceparent: trace.traceparent(),
          agentId: this.#agentId,
          namespace: this.#pod.metadata.namespace ?? 'default',
          pod: this.#pod.metadata.name,
          container,
          // Resumed after a reconnect: from the last line's time, no new tail.
          tailLines: since ? undefined : TAIL_LINES,
          sinceTime: since,
          timestamps: true,
        };
      },
      reply: (r) => this.#reply(r),
      update: (u) => this.#update(u),
    });
  }

  #reply(r: SubscribeReply): void {
    if (r.ok) this.#setStatus('Following.', r.traceId);
    else {
      this.#showError(r.error);
      this.#setStatus(`Refused (${r.status}).`, r.traceId);
    }
  }

  #update(u: UiUpdate): void {
    if (u.type === 'lines') {
      const added = this.#buffer.add(u.lines);
      if (added.length === 0) return;
      if (this.#paused) {
        this.#unseen += added.length;
        this.#pause.textContent = `Resume (${this.#unseen} new)`;
        return;
      }
      this.#appendLines(added.map((l) => l.text));
    } else if (u.type === 'end') {
      this.#ended = true;
      this.#setStatus('The log ended (the container stopped or the follow was cut).', undefined, true);
    } else if (u.type === 'error') {
      this.#showError(`${u.error}${u.reconnecting ? ' (waiting for the agent to return)' : ''}`);
    }
  }

  #appendLines(lines: string[]): void {
    if (lines.length === 0) return;
    const atBottom = this.#pre.scrollTop + this.#pre.clientHeight >= this.#pre.scrollHeight - 4;
    this.#pre.append(document.createTextNode(`${lines.join('\n')}\n`));
    this.#domLines.push(lines.length);
    let total = this.#domLines.reduce((a, b) => a + b, 0);
    while (total > MAX_LINES && this.#domLines.length > 1) {
      total -= this.#domLines.shift()!;
      this.#pre.firstChild?.remove();
    }
    if (atBottom || this.#domLines.length === 1) this.#pre.scrollTop = this.#pre.scrollHeight;
  }

  #togglePause(): void {
    this.#paused = !this.#paused;
    this.#pause.setAttribute('aria-pressed', String(this.#paused));
    this.#pause.textContent = this.#paused ? 'Resume' : 'Pause';
    if (!this.#paused && this.#unseen > 0) {
      const lines = this.#buffer.lines.slice(-Math.min(this.#unseen, MAX_LINES)).map((l) => l.text);
      this.#unseen = 0;
      this.#appendLines(lines);
      this.#pre.scrollTop = this.#pre.scrollHeight;
    }
    if (!this.#ended) this.#setStatus(this.#paused ? 'Paused: new lines are kept and shown on resume.' : 'Following.', undefined, true);
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
    this.#unsubscribe?.();
  }
}

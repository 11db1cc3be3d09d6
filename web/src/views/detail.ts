// One object in detail: its YAML (fetched fresh over the HTTP API), its events, and for pods the
// log. Tabs are buttons; Escape or "Close" returns to the table.
import type { KubeObject } from '../../../protocol/ui.ts';
import { agentBase, apiJson } from '../api.ts';
import type { AppContext } from '../context.ts';
import { traceBadge } from '../context.ts';
import { clear, h } from '../dom.ts';
import { formatAge } from '../lib/age.ts';
import { objectPath, type ResourceOption } from '../lib/discovery.ts';
import { toYaml, withoutManagedFields } from '../lib/yaml.ts';
import { LogView } from './logs.ts';

type Tab = 'yaml' | 'events' | 'logs';

export class DetailView {
  readonly element: HTMLElement;
  readonly #ctx: AppContext;
  readonly #agentId: string;
  readonly #resource: ResourceOption;
  readonly #obj: KubeObject;
  readonly #body: HTMLElement;
  readonly #tabs = new Map<Tab, HTMLButtonElement>();
  #logs: LogView | undefined;
  readonly #heading: HTMLElement;

  constructor(ctx: AppContext, agentId: string, resource: ResourceOption, obj: KubeObject, onClose: () => void) {
    this.#ctx = ctx;
    this.#agentId = agentId;
    this.#resource = resource;
    this.#obj = obj;
    const title = `${resource.kind} ${obj.metadata.namespace ? `${obj.metadata.namespace}/` : ''}${obj.metadata.name}`;
    this.#heading = h('h3', { id: 'detail-heading', tabindex: -1 }, title);
    const tabs: Tab[] = resource.group === '' && resource.resource === 'pods' ? ['yaml', 'events', 'logs'] : ['yaml', 'events'];
    const bar = h('div', { class: 'tabs', role: 'group', 'aria-label': 'Show' });
    for (const t of tabs) {
      const b = h('button', { type: 'button', 'aria-pressed': 'false', 'data-tab': t, onclick: () => this.show(t) }, { yaml: 'YAML', events: 'Events', logs: 'Logs' }[t]);
      this.#tabs.set(t, b);
      bar.append(b);
    }
    this.#body = h('div', { class: 'detail-body' });
    this.element = h(
      'section',
      { class: 'detail', 'aria-labelledby': 'detail-heading' },
      h('div', { class: 'panel-head' }, this.#heading, h('button', { type: 'button', class: 'quiet', onclick: onClose }, 'Close')),
      bar,
      this.#body,
    );
    this.element.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') onClose();
    });
  }

  focus(): void {
    this.#heading.focus();
  }

  show(tab: Tab): void {
    for (const [t, b] of this.#tabs) b.setAttribute('aria-pressed', String(t === tab));
    this.#logs?.destroy();
    this.#logs = undefined;
    const trace = this.#ctx.action(`${tab} ${this.#obj.metadata.name}`);
    const status = h('p', { class: 'panel-status', role: 'status' }, 'Loading…');
    clear(this.#body, status);
    const done = (text: string) => clear(status, text, ' ', traceBadge(this.#ctx.traceUiUrl, trace.traceId));
    const fail = (e: unknown) => {
      clear(this.#body, h('p', { class: 'error', role: 'alert' }, e instanceof Error ? e.message : String(e)), status);
      done('Failed.');
    };
    const base = agentBase(this.#agentId, 'kubernetes');
    const { namespace, name } = this.#obj.metadata;
    if (tab === 'yaml') {
      apiJson<KubeObject>(`${base}${objectPath(this.#resource, namespace, name)}`, trace)
        .then((fresh) => {
          const yaml = toYaml(withoutManagedFields(fresh));
          clear(this.#body, h('pre', { class: 'yaml', tabindex: 0, 'aria-label': `YAML of ${name}` }, yaml), status);
          done('');
        })
        .catch(fail);
    } else if (tab === 'events') {
      const selector = [`involvedObject.name=${name}`, this.#obj.metadata.uid ? `involvedObject.uid=${this.#obj.metadata.uid}` : ''].filter(Boolean).join(',');
      const nsPath = namespace ? `/namespaces/${encodeURIComponent(namespace)}` : '';
      apiJson<{ items: KubeObject[] }>(`${base}/api/v1${nsPath}/events?fieldSelector=${encodeURIComponent(selector)}`, trace)
        .then((list) => {
          const now = Date.now();
          const when = (e: KubeObject) => String(e.lastTimestamp ?? e.eventTime ?? e.metadata.creationTimestamp ?? '');
          const items = [...list.items].sort((a, b) => when(b).localeCompare(when(a)));
          const table = h(
            'table',
            { class: 'events', 'aria-label': `Events of ${name}` },
            h('thead', {}, h('tr', {}, ...['Type', 'Reason', 'Age', 'From', 'Message'].map((t) => h('th', { scope: 'col' }, t)))),
            h(
              'tbody',
              {},
              ...items.map((e) =>
                h(
                  'tr',
                  {},
                  h('td', {}, String(e.type ?? '')),
                  h('td', {}, String(e.reason ?? '')),
                  h('td', {}, formatAge(now - Date.parse(when(e)))),
                  h('td', {}, String((e.source as { component?: string } | undefined)?.component ?? e.reportingComponent ?? '')),
                  h('td', {}, String(e.message ?? '')),
                ),
              ),
            ),
          );
          clear(this.#body, items.length ? h('div', { class: 'scroll-x' }, table) : h('p', {}, 'No events.'), status);
          done(`${items.length} event(s).`);
        })
        .catch(fail);
    } else {
      this.#logs = new LogView(this.#ctx, this.#agentId, this.#obj, trace);
      clear(this.#body, this.#logs.element);
    }
  }

  destroy(): void {
    this.#logs?.destroy();
  }
}

// What the page shows, kept in the URL's fragment so a link reopens it: the view, the agent, the
// graph panels (range, step, query each), the Kubernetes namespace and resource and the object in
// detail. The fragment never reaches a server, and the token is never part of it.

export type View = 'agents' | 'metrics' | 'kubernetes';

export interface PanelLayout {
  query: string;
  /** Duration as the pickers write it: `1h`, `5m`. */
  range: string;
  step: string;
}

export interface Layout {
  view: View;
  agent?: string;
  panels: PanelLayout[];
  /** Kubernetes: namespace ('' = all namespaces). */
  namespace?: string;
  /** Kubernetes: `group/version/resource`, `v1/pods` for the core group. */
  resource?: string;
  /** Kubernetes: the object shown in detail, `namespace/name` (or `name` when cluster-scoped). */
  object?: string;
  filter?: string;
}

const VIEWS: readonly View[] = ['agents', 'metrics', 'kubernetes'];
const DURATION = /^(?:\d+(?:ms|s|m|h|d|w|y))+$|^\d+$/;

export const DEFAULT_RANGE = '1h';
export const DEFAULT_STEP = '15s';

/** The fragment (without `#`) for a layout; panels are `g=<range> <step> <query>`, in order. */
export function encodeLayout(layout: Layout): string {
  const p = new URLSearchParams();
  p.set('view', layout.view);
  if (layout.agent) p.set('agent', layout.agent);
  for (const panel of layout.panels) p.append('g', `${panel.range} ${panel.step} ${panel.query}`);
  if (layout.namespace !== undefined) p.set('ns', layout.namespace);
  if (layout.resource) p.set('res', layout.resource);
  if (layout.object) p.set('obj', layout.object);
  if (layout.filter) p.set('filter', layout.filter);
  return p.toString();
}

/** The layout a fragment describes; anything malformed is left out rather than failing the page. */
export function decodeLayout(fragment: string): Layout {
  const p = new URLSearchParams(fragment.startsWith('#') ? fragment.slice(1) : fragment);
  const view = p.get('view');
  const layout: Layout = { view: VIEWS.includes(view as View) ? (view as View) : 'agents', panels: [] };
  const agent = p.get('agent');
  if (agent && /^[A-Za-z0-9._-]{1,63}$/.test(agent)) layout.agent = agent;
  for (const g of p.getAll('g')) {
    const first = g.indexOf(' ');
    const second = first < 0 ? -1 : g.indexOf(' ', first + 1);
    if (second < 0) continue;
    const range = g.slice(0, first);
    const step = g.slice(first + 1, second);
    const query = g.slice(second + 1);
    if (!DURATION.test(range) || !DURATION.test(step)) continue;
    layout.panels.push({ range, step, query });
  }
  const ns = p.get('ns');
  if (ns !== null) layout.namespace = ns;
  const res = p.get('res');
  if (res && /^[a-z0-9.-]*\/?[a-z0-9]+\/[a-z0-9.-]+$/.test(res)) layout.resource = res;
  const obj = p.get('obj');
  if (obj) layout.object = obj;
  const filter = p.get('filter');
  if (filter) layout.filter = filter;
  return layout;
}

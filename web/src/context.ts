// What every view gets from the page: the tab's connection, the layout in the URL, the agents
// list, and a way to start an operator action's trace.
import type { UiAgent } from '../../protocol/ui.ts';
import type { UiConnection } from './connection.ts';
import { h } from './dom.ts';
import type { Layout } from './lib/layout.ts';
import { Trace, traceLink } from './lib/traceparent.ts';

export interface AppContext {
  conn: UiConnection;
  layout(): Layout;
  /** Changes the layout and writes it to the URL (without a page reload or a history entry). */
  setLayout(patch: Partial<Layout>): void;
  agents(): UiAgent[];
  onAgents(listener: (agents: UiAgent[]) => void): () => void;
  /** A new trace for an operator's action, shown in the header as the latest. */
  action(what: string): Trace;
  traceUiUrl: string | undefined;
  nonce: string | undefined;
}

export interface ViewHandle {
  element: HTMLElement;
  destroy(): void;
}

/** A trace id, linked to the trace UI when KAS_TRACE_UI_URL is set. */
export function traceBadge(traceUiUrl: string | undefined, traceId: string, label = 'trace'): HTMLElement {
  const href = traceLink(traceUiUrl, traceId);
  const id = href
    ? h('a', { href, target: '_blank', rel: 'noopener noreferrer', class: 'trace-id', 'data-trace-id': traceId }, traceId)
    : h('code', { class: 'trace-id', 'data-trace-id': traceId }, traceId);
  return h('span', { class: 'trace' }, `${label} `, id);
}

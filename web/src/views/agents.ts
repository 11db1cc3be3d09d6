// Every agent in the token's scope with its replicas, live: the agents subscription sends the
// whole list again whenever a replica comes or goes on any node.
import type { UiAgent } from '../../../protocol/ui.ts';
import type { AppContext, ViewHandle } from '../context.ts';
import { clear, h } from '../dom.ts';
import { formatAge } from '../lib/age.ts';

export function agentsView(ctx: AppContext): ViewHandle {
  const summary = h('p', { id: 'agents-summary', role: 'status' });
  const body = h('tbody');
  const table = h(
    'table',
    { class: 'agents', 'aria-describedby': 'agents-summary' },
    h('caption', { class: 'visually-hidden' }, 'Connected agents and their replicas'),
    h('thead', {}, h('tr', {}, ...['Agent', 'Replica', 'Node', 'Version', 'Capabilities', 'Connected'].map((t) => h('th', { scope: 'col' }, t)))),
    body,
  );
  const element = h('section', { class: 'view', 'aria-labelledby': 'agents-heading' }, h('h2', { id: 'agents-heading' }, 'Agents'), summary, h('div', { class: 'scroll-x' }, table));

  function render(agents: UiAgent[]): void {
    const now = Date.now();
    const replicas = agents.reduce((n, a) => n + a.replicas.length, 0);
    summary.textContent =
      agents.length === 0 ? 'No agent in this token’s scope is connected.' : `${agents.length} agent(s), ${replicas} replica(s) connected.`;
    clear(body);
    for (const agent of [...agents].sort((a, b) => a.id.localeCompare(b.id))) {
      if (agent.replicas.length === 0) {
        body.append(h('tr', { 'data-agent': agent.id }, h('th', { scope: 'row' }, agent.id), h('td', { colspan: 5 }, 'no replica connected')));
        continue;
      }
      agent.replicas.forEach((r, i) => {
        body.append(
          h(
            'tr',
            { 'data-agent': agent.id, 'data-replica': r.replica },
            i === 0 ? h('th', { scope: 'row', rowspan: agent.replicas.length }, agent.id) : null,
            h('td', {}, r.replica),
            h('td', {}, r.node),
            h('td', {}, r.version),
            h('td', {}, r.capabilities.join(', ')),
            h('td', {}, h('time', { datetime: r.connectedAt, title: r.connectedAt }, formatAge(now - Date.parse(r.connectedAt)))),
          ),
        );
      });
    }
  }

  render(ctx.agents());
  const stop = ctx.onAgents(render);
  // Connection ages move on even when nothing else changes.
  const timer = setInterval(() => render(ctx.agents()), 5_000);
  return {
    element,
    destroy() {
      stop();
      clearInterval(timer);
    },
  };
}

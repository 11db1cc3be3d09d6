// Several live graphs at once, their layout (query, range, step of each) kept in the URL.
import type { AppContext, ViewHandle } from '../context.ts';
import { h } from '../dom.ts';
import { DEFAULT_RANGE, DEFAULT_STEP, type PanelLayout } from '../lib/layout.ts';
import { GraphPanel } from './graphPanel.ts';

export function metricsView(ctx: AppContext): ViewHandle {
  const list = h('div', { class: 'panels' });
  const panels: GraphPanel[] = [];

  const save = () => ctx.setLayout({ panels: panels.map((p) => p.layout) });

  function add(layout: PanelLayout, run: boolean): GraphPanel {
    const panel: GraphPanel = new GraphPanel(ctx, layout, panels.length, {
      changed: save,
      remove: () => {
        const i = panels.indexOf(panel);
        panels.splice(i, 1);
        panel.destroy();
        panel.element.remove();
        panels.forEach((p, j) => p.renumber(j));
        save();
        addButton.focus();
      },
    });
    panels.push(panel);
    list.append(panel.element);
    if (run) panel.run();
    return panel;
  }

  const addButton = h(
    'button',
    {
      type: 'button',
      onclick: () => {
        add({ query: '', range: DEFAULT_RANGE, step: DEFAULT_STEP }, false).focus();
        save();
      },
    },
    'Add graph',
  );
  const element = h(
    'section',
    { class: 'view', 'aria-labelledby': 'metrics-heading' },
    h('div', { class: 'view-head' }, h('h2', { id: 'metrics-heading' }, 'Metrics'), addButton),
    list,
  );
  const initial = ctx.layout().panels;
  if (initial.length === 0) add({ query: 'up', range: '5m', step: '5s' }, true);
  else for (const p of initial) add(p, true);
  save();

  return {
    element,
    destroy() {
      for (const p of panels) p.destroy();
    },
  };
}

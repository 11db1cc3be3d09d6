// Kubernetes: namespace and resource pickers from discovery (HTTP API), a live table over the
// tab's connection, and the detail of the object picked (YAML, events, logs).
import type { KubeObject } from '../../../protocol/ui.ts';
import { agentBase, apiJson } from '../api.ts';
import type { AppContext, ViewHandle } from '../context.ts';
import { clear, h, option } from '../dom.ts';
import {
  type APIGroupList,
  type APIResourceList,
  collectionPath,
  objectPath,
  preferredGroupVersions,
  resourceId,
  type ResourceOption,
  resourcesOf,
  sortResources,
} from '../lib/discovery.ts';
import { columnsFor } from '../lib/kubeColumns.ts';
import { DetailView } from './detail.ts';
import { LiveTable } from './liveTable.ts';

const DEFAULT_RESOURCE = 'v1/pods';

export function kubernetesView(ctx: AppContext): ViewHandle {
  const agentId = ctx.layout().agent;
  const nsSelect = h('select', { id: 'k8s-namespace', disabled: true }, option('', 'All namespaces'));
  const resSelect = h('select', { id: 'k8s-resource', disabled: true });
  const status = h('p', { class: 'panel-status', role: 'status' });
  const tableBox = h('div', { class: 'table-box' });
  const detailBox = h('div', { class: 'detail-box' });
  const element = h(
    'section',
    { class: 'view kubernetes', 'aria-labelledby': 'k8s-heading' },
    h(
      'div',
      { class: 'view-head' },
      h('h2', { id: 'k8s-heading' }, 'Kubernetes'),
      h('div', { class: 'pickers' }, h('label', { for: 'k8s-namespace' }, 'Namespace '), nsSelect, h('label', { for: 'k8s-resource' }, 'Resource '), resSelect),
    ),
    status,
    h('div', { class: 'k8s-body' }, tableBox, detailBox),
  );
  let resources: ResourceOption[] = [];
  let table: LiveTable | undefined;
  let detail: DetailView | undefined;
  let destroyed = false;

  if (!agentId) {
    status.textContent = 'Pick an agent first.';
    return { element, destroy() {} };
  }
  const base = agentBase(agentId, 'kubernetes');

  const current = () => resources.find((r) => resourceId(r) === resSelect.value);

  function closeDetail(refocus: boolean): void {
    detail?.destroy();
    detail = undefined;
    detailBox.replaceChildren();
    element.classList.remove('with-detail');
    if (ctx.layout().object) ctx.setLayout({ object: undefined });
    if (refocus) (tableBox.querySelector('.table-scroll') as HTMLElement | null)?.focus();
  }

  function openDetail(obj: KubeObject): void {
    const resource = current();
    if (!resource) return;
    closeDetail(false);
    detail = new DetailView(ctx, agentId!, resource, obj, () => closeDetail(true));
    detailBox.append(detail.element);
    element.classList.add('with-detail');
    ctx.setLayout({ object: obj.metadata.namespace ? `${obj.metadata.namespace}/${obj.metadata.name}` : obj.metadata.name });
    detail.show('yaml');
    detail.focus();
  }

  function startTable(): void {
    table?.destroy();
    closeDetail(false);
    const resource = current();
    if (!resource) return;
    nsSelect.disabled = !resource.namespaced;
    const namespace = resource.namespaced ? nsSelect.value : '';
    ctx.setLayout({ resource: resourceId(resource), namespace });
    const trace = ctx.action(`list ${resource.resource}`);
    table = new LiveTable(ctx, {
      agentId: agentId!,
      path: collectionPath(resource, namespace),
      columns: columnsFor(resource.resource, resource.group, resource.namespaced && !namespace),
      label: `${resource.kind} ${namespace ? `in ${namespace}` : resource.namespaced ? 'in all namespaces' : ''}`.trim(),
      filter: ctx.layout().filter ?? '',
      trace,
      onOpen: openDetail,
      onFilter: (text) => ctx.setLayout({ filter: text || undefined }),
    });
    clear(tableBox, table.element);
  }

  async function discover(): Promise<void> {
    const trace = ctx.action('discovery');
    // Read before the table starts: starting it closes any detail and clears the object from the URL.
    const wantedObject = ctx.layout().object;
    status.textContent = 'Reading the cluster’s resources…';
    try {
      const [core, groups, namespaces] = await Promise.all([
        apiJson<APIResourceList>(`${base}/api/v1`, trace),
        apiJson<APIGroupList>(`${base}/apis`, trace),
        apiJson<{ items: KubeObject[] }>(`${base}/api/v1/namespaces`, trace).catch(() => ({ items: [] })),
      ]);
      const lists = await Promise.all(
        preferredGroupVersions(groups).map((gv) => apiJson<APIResourceList>(`${base}/apis/${gv}`, trace).catch(() => ({ groupVersion: gv, resources: [] }))),
      );
      if (destroyed) return;
      resources = sortResources([core, ...lists].flatMap(resourcesOf));
      const wanted = ctx.layout().resource ?? DEFAULT_RESOURCE;
      const byGroup = new Map<string, HTMLOptGroupElement>();
      for (const r of resources) {
        const label = r.group || 'core';
        let g = byGroup.get(label);
        if (!g) {
          g = h('optgroup', { label });
          byGroup.set(label, g);
          resSelect.append(g);
        }
        g.append(option(resourceId(r), r.resource, resourceId(r) === wanted));
      }
      const wantedNs = ctx.layout().namespace ?? '';
      for (const ns of namespaces.items.map((n) => n.metadata.name).sort()) nsSelect.append(option(ns, ns, ns === wantedNs));
      if (wantedNs && !namespaces.items.some((n) => n.metadata.name === wantedNs)) nsSelect.append(option(wantedNs, wantedNs, true));
      resSelect.disabled = false;
      nsSelect.disabled = false;
      status.textContent = '';
      startTable();
      // A link that named an object reopens its detail.
      const resource = current();
      if (wantedObject && resource) {
        const [ns, name] = wantedObject.includes('/') ? wantedObject.split('/', 2) : [undefined, wantedObject];
        // The whole object (a pod's containers for the log picker), read once through kas.
        apiJson<KubeObject>(`${base}${objectPath(resource, ns, name!)}`, ctx.action(`open ${name}`))
          .then((obj) => !destroyed && openDetail(obj))
          .catch((e: unknown) => {
            status.textContent = `Could not open ${wantedObject}: ${e instanceof Error ? e.message : String(e)}`;
            ctx.setLayout({ object: undefined });
          });
      }
    } catch (e) {
      status.textContent = `Discovery failed: ${e instanceof Error ? e.message : String(e)}`;
    }
  }

  nsSelect.addEventListener('change', startTable);
  resSelect.addEventListener('change', () => {
    ctx.setLayout({ filter: undefined });
    startTable();
  });
  void discover();
  return {
    element,
    destroy() {
      destroyed = true;
      table?.destroy();
      detail?.destroy();
    },
  };
}

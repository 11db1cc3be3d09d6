// The resource picker's choices, from the API server's discovery documents (`/api/v1`, then each
// group's preferred version from `/apis`): every resource that can be listed and watched.

export interface ResourceOption {
  /** '' for the core group. */
  group: string;
  version: string;
  /** Plural name: `pods`. */
  resource: string;
  kind: string;
  namespaced: boolean;
}

interface APIResource {
  name: string;
  namespaced?: boolean;
  kind?: string;
  verbs?: string[];
}

export interface APIResourceList {
  groupVersion?: string;
  resources?: APIResource[];
}

export interface APIGroupList {
  groups?: { name: string; preferredVersion?: { groupVersion: string; version: string }; versions?: { groupVersion: string; version: string }[] }[];
}

/** The groupVersions to fetch after `/apis`: each group's preferred (else first) version. */
export function preferredGroupVersions(groups: APIGroupList): string[] {
  const out: string[] = [];
  for (const g of groups.groups ?? []) {
    const gv = g.preferredVersion?.groupVersion ?? g.versions?.[0]?.groupVersion;
    if (gv) out.push(gv);
  }
  return out;
}

export function resourcesOf(list: APIResourceList): ResourceOption[] {
  const gv = list.groupVersion ?? 'v1';
  const slash = gv.indexOf('/');
  const group = slash < 0 ? '' : gv.slice(0, slash);
  const version = slash < 0 ? gv : gv.slice(slash + 1);
  return (list.resources ?? [])
    .filter((r) => !r.name.includes('/') && (r.verbs ?? []).includes('list') && (r.verbs ?? []).includes('watch'))
    .map((r) => ({ group, version, resource: r.name, kind: r.kind ?? r.name, namespaced: r.namespaced ?? false }));
}

/** Core first, then by group; within a group by name. */
export function sortResources(options: ResourceOption[]): ResourceOption[] {
  return [...options].sort((a, b) => (a.group === '' ? -1 : 0) - (b.group === '' ? -1 : 0) || a.group.localeCompare(b.group) || a.resource.localeCompare(b.resource));
}

/** `v1/pods`, `apps/v1/deployments`: how the URL names a resource. */
export function resourceId(o: Pick<ResourceOption, 'group' | 'version' | 'resource'>): string {
  return o.group ? `${o.group}/${o.version}/${o.resource}` : `${o.version}/${o.resource}`;
}

function base(o: Pick<ResourceOption, 'group' | 'version'>): string {
  return o.group ? `/apis/${o.group}/${o.version}` : `/api/${o.version}`;
}

/** The collection a table lists and watches; namespace '' = all namespaces (or cluster-scoped). */
export function collectionPath(o: ResourceOption, namespace: string): string {
  const ns = o.namespaced && namespace ? `/namespaces/${encodeURIComponent(namespace)}` : '';
  return `${base(o)}${ns}/${o.resource}`;
}

export function objectPath(o: ResourceOption, namespace: string | undefined, name: string): string {
  const ns = o.namespaced && namespace ? `/namespaces/${encodeURIComponent(namespace)}` : '';
  return `${base(o)}${ns}/${o.resource}/${encodeURIComponent(name)}`;
}

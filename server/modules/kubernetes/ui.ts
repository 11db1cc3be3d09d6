// The dashboard's Kubernetes subscriptions: a live table (list in pages, then a watch that
// identical tables share on the fan-out hub, re-listing after 410 Gone and re-watching when a
// watch ends, as an informer does) and a pod's log (its last lines, then followed).
import { startRoutingSpan } from '../../../otel/spans.ts';
import { readKubernetesPath } from '../../../protocol/kubernetes.ts';
import type { KubeObject, UiSubscription } from '../../../protocol/ui.ts';
import type { EndReason, FanOutEvent, SharedStream, Viewer } from '../../fanout/hub.ts';
import { KasError } from '../../routing/errors.ts';
import type { AgentRequest, AgentStream } from '../../routing/request.ts';
import type { Agents, UiContext, UiRun, UiSink } from '../capability.ts';
import { encodePath, normalisePath } from '../paths.ts';
import { joinSharedWatch, LineSplitter, shareableWatch, type WatchHead, type WatchHub } from './sharedWatch.ts';

/** Objects per list page: the first rows show while the rest are on their way. */
export const LIST_PAGE = 500;
/** Watch events and log lines are sent in batches, at most this often. */
const BATCH_MS = 100;
const MAX_BATCH_LINES = 2000;
/** A list page or an error answer is read whole, up to this. */
const MAX_PAGE_BYTES = 64 * 1024 * 1024;
/** A tab this far behind (bytes unsent on its socket) is waited for before more log lines are read. */
const LOG_BACKLOG_BYTES = 1024 * 1024;
const RETRY_MIN_MS = 1_000;
const RETRY_MAX_MS = 30_000;

type TableSubscription = Extract<UiSubscription, { kind: 'kubernetes' }>;
type LogSubscription = Extract<UiSubscription, { kind: 'logs' }>;

export interface KubernetesUiDeps {
  agents: Agents;
  watches: WatchHub;
}

function request(agentId: string, path: string, query: URLSearchParams, streaming: boolean): AgentRequest {
  return { agentId, upstream: 'kubernetes', method: 'GET', path, query: query.toString(), headers: { accept: 'application/json' }, body: undefined, streaming, timeoutMs: streaming ? 0 : 60_000 };
}

async function readJson<T>(stream: AgentStream): Promise<T> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of stream.body) {
    size += chunk.byteLength;
    if (size > MAX_PAGE_BYTES) {
      stream.body.cancel('too large');
      throw new KasError('bad_gateway', `the Kubernetes answer exceeds ${MAX_PAGE_BYTES} bytes`);
    }
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as T;
  } catch {
    throw new KasError('bad_gateway', 'the Kubernetes API answered something that is not JSON');
  }
}

/** A non-2xx answer of the API server, as the KasError the tab is told of. */
async function statusError(stream: AgentStream): Promise<KasError> {
  const status = await readJson<{ message?: string; reason?: string }>(stream).catch(() => ({}) as { message?: string; reason?: string });
  const code = stream.status === 403 ? 'forbidden' : stream.status === 404 ? 'not_found' : stream.status === 400 ? 'bad_request' : 'bad_gateway';
  return new KasError(code, status.message ?? `the Kubernetes API answered ${stream.status}${status.reason ? ` (${status.reason})` : ''}`);
}

/** What the table shows of an object: all of it but managedFields, which only tools that write need. */
function forTable(object: KubeObject): KubeObject {
  const { managedFields: _dropped, ...metadata } = object.metadata as KubeObject['metadata'] & { managedFields?: unknown };
  return { ...object, metadata };
}

function backoff(attempt: number): number {
  return Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** attempt);
}

function sleepUnlessGone(sink: UiSink, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    const stop = sink.onGone(done);
    function done() {
      clearTimeout(timer);
      stop();
      resolve();
    }
  });
}

// ---- tables ----

export function takeTable(deps: KubernetesUiDeps, subscription: TableSubscription, ui: UiContext): UiRun {
  const segments = normalisePath(subscription.path);
  const target = readKubernetesPath(segments);
  if (target.kind !== 'resource' || target.name !== undefined || target.subresource !== undefined || target.watchPrefix) {
    throw new KasError('bad_request', `${subscription.path} is not a collection (such as /api/v1/namespaces/demo/pods); a table lists one`);
  }
  const path = encodePath(segments);
  return (sink) => new LiveTable(deps, subscription, path, ui, sink).run();
}

class LiveTable {
  #deps: KubernetesUiDeps;
  #subscription: TableSubscription;
  #path: string;
  #ui: UiContext;
  #sink: UiSink;
  #resourceVersion: string | undefined;
  #failures = 0;

  constructor(deps: KubernetesUiDeps, subscription: TableSubscription, path: string, ui: UiContext, sink: UiSink) {
    this.#deps = deps;
    this.#subscription = subscription;
    this.#path = path;
    this.#ui = ui;
    this.#sink = sink;
    this.#resourceVersion = subscription.resourceVersion;
  }

  #selectors(): URLSearchParams {
    const query = new URLSearchParams();
    if (this.#subscription.labelSelector) query.set('labelSelector', this.#subscription.labelSelector);
    if (this.#subscription.fieldSelector) query.set('fieldSelector', this.#subscription.fieldSelector);
    return query;
  }

  async run(): Promise<void> {
    while (!this.#sink.gone) {
      try {
        if (this.#resourceVersion === undefined) await this.#list();
        if (this.#sink.gone) return;
        const outcome = await this.#watch();
        if (outcome === 'gone') this.#resourceVersion = undefined; // 410: the version is compacted away; list again
        this.#failures = 0;
      } catch (error) {
        if (this.#sink.gone) return;
        const kasError = error instanceof KasError ? error : new KasError('bad_gateway', (error as Error).message);
        // Refusals are final: retrying the same request would be refused the same way.
        const final = kasError.status === 403 || kasError.status === 404 || kasError.status === 400;
        this.#sink.send({ id: this.#subscription.id, type: 'error', errorType: kasError.code, error: kasError.message, status: kasError.status, final, reconnecting: !final });
        if (final) return;
        await sleepUnlessGone(this.#sink, backoff(this.#failures++));
      }
    }
  }

  async #list(): Promise<void> {
    let continueToken: string | undefined;
    let first = true;
    do {
      const query = this.#selectors();
      query.set('limit', String(LIST_PAGE));
      if (continueToken) query.set('continue', continueToken);
      const stream = await this.#deps.agents.open(request(this.#subscription.agentId, this.#path, query, false), { sub: this.#ui.sub, parent: this.#ui.parent });
      if (stream.status !== 200) throw await statusError(stream);
      const list = await readJson<{ metadata?: { resourceVersion?: string; continue?: string }; items?: KubeObject[] }>(stream);
      continueToken = list.metadata?.continue || undefined;
      const resourceVersion = list.metadata?.resourceVersion ?? '';
      this.#sink.send({ id: this.#subscription.id, type: 'list', items: (list.items ?? []).map(forTable), resourceVersion, reset: first, last: !continueToken });
      first = false;
      if (!continueToken) this.#resourceVersion = resourceVersion;
    } while (continueToken && !this.#sink.gone);
  }

  /** Watches from the table's resourceVersion until the watch ends: 'ended' (watch again) or 'gone' (list again). */
  #watch(): Promise<'ended' | 'gone'> {
    const query = this.#selectors();
    query.set('watch', '1');
    query.set('allowWatchBookmarks', 'true');
    query.set('resourceVersion', this.#resourceVersion!);
    const watch = shareableWatch(request(this.#subscription.agentId, this.#path, query, true))!;
    const span = startRoutingSpan('route kubernetes', watch.request, this.#ui.parent);
    let stream: SharedStream<WatchHead, Buffer> | undefined;
    let watching: TableViewer | undefined;
    const watched = new Promise<'ended' | 'gone'>((resolve, reject) => {
      const viewer = new TableViewer(this.#subscription.id, this.#sink, (rv) => (this.#resourceVersion = rv), resolve, reject);
      stream = joinSharedWatch(this.#deps.watches, this.#deps.agents, watch, this.#ui.sub, viewer, span);
      if (!stream) return resolve('ended');
      watching = viewer;
    });
    return watched.finally(() => {
      // This table is done with that watch (it lists again, or the tab left); others may go on.
      if (watching) stream?.leave(watching);
      span.end();
    });
  }
}

/** A table as a viewer of a shared watch: its lines become batched events. */
class TableViewer implements Viewer<WatchHead, Buffer> {
  #id: string;
  #sink: UiSink;
  #onVersion: (rv: string) => void;
  #done: (outcome: 'ended' | 'gone') => void;
  #fail: (error: unknown) => void;
  #batch: { type: 'ADDED' | 'MODIFIED' | 'DELETED'; object: KubeObject }[] = [];
  #resourceVersion = '';
  #timer: NodeJS.Timeout | undefined;
  #over = false;
  #lines = new LineSplitter();

  constructor(id: string, sink: UiSink, onVersion: (rv: string) => void, done: (outcome: 'ended' | 'gone') => void, fail: (error: unknown) => void) {
    this.#id = id;
    this.#sink = sink;
    this.#onVersion = onVersion;
    this.#done = done;
    this.#fail = fail;
  }

  get gone(): boolean {
    return this.#sink.gone;
  }

  onGone(listener: () => void): () => void {
    return this.#sink.onGone(() => {
      this.#finish('ended');
      listener();
    });
  }

  get backlog(): number {
    return this.#sink.backlog;
  }

  start(head: WatchHead): void {
    if (head.status !== 200) this.#failWith(new KasError(head.status === 403 ? 'forbidden' : 'bad_gateway', `the Kubernetes API answered the watch with ${head.status}`));
  }

  send(event: FanOutEvent<Buffer>): void {
    if (this.#over) return;
    // Shared watches hand out whole lines; anything unsplit (not a JSON stream) is cut into lines here.
    for (const line of this.#lines.push(event.payload)) this.#line(line);
  }

  #line(line: Buffer): void {
    const text = line.toString('utf8').trim();
    if (text === '') return; // a keep-alive
    let event: { type?: string; object?: KubeObject & { code?: number; message?: string } };
    try {
      event = JSON.parse(text) as typeof event;
    } catch {
      return this.#failWith(new KasError('bad_gateway', 'the watch carried a line that is not JSON'));
    }
    const { type, object } = event;
    if (!object) return;
    if (type === 'ERROR') {
      if (object.code === 410) return this.#finish('gone');
      return this.#failWith(new KasError('bad_gateway', `the watch ended with an error: ${object.message ?? 'unknown'}`));
    }
    const rv = object.metadata?.resourceVersion;
    if (rv) {
      this.#resourceVersion = rv;
      this.#onVersion(rv);
    }
    if (type === 'BOOKMARK') return this.#schedule();
    if (type === 'ADDED' || type === 'MODIFIED' || type === 'DELETED') {
      this.#batch.push({ type, object: forTable(object) });
      if (this.#batch.length >= MAX_BATCH_LINES) this.#flush();
      else this.#schedule();
    }
  }

  #schedule(): void {
    this.#timer ??= setTimeout(() => this.#flush(), BATCH_MS);
  }

  #flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#batch.length === 0 && this.#resourceVersion === '') return;
    const events = this.#batch;
    this.#batch = [];
    this.#sink.send({ id: this.#id, type: 'events', events, resourceVersion: this.#resourceVersion });
  }

  end(reason: EndReason): void {
    // A table that fell behind re-watches from its last version, as any watch client would.
    void reason;
    this.#finish('ended');
  }

  fail(error: unknown): void {
    this.#failWith(error);
  }

  #finish(outcome: 'ended' | 'gone'): void {
    if (this.#over) return;
    this.#over = true;
    this.#flush();
    this.#done(outcome);
  }

  #failWith(error: unknown): void {
    if (this.#over) return;
    this.#over = true;
    this.#flush();
    this.#fail(error);
  }
}

// ---- logs ----

const NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

export function takeLog(deps: KubernetesUiDeps, subscription: LogSubscription, ui: UiContext): UiRun {
  const { namespace, pod, container } = subscription;
  for (const [what, value] of [['namespace', namespace], ['pod', pod], ['container', container]] as const) {
    if (value !== undefined && !NAME.test(value)) throw new KasError('bad_request', `${what} "${value}" is not a Kubernetes name`);
  }
  const query = new URLSearchParams({ follow: 'true', timestamps: String(subscription.timestamps === true) });
  if (container) query.set('container', container);
  if (subscription.sinceTime) query.set('sinceTime', subscription.sinceTime);
  else query.set('tailLines', String(subscription.tailLines ?? 500));
  const path = encodePath(['api', 'v1', 'namespaces', namespace, 'pods', pod, 'log']);
  return async (sink) => {
    const stream = await deps.agents.open(request(subscription.agentId, path, query, true), { sub: ui.sub, parent: ui.parent });
    if (stream.status !== 200) throw await statusError(stream);
    const stop = sink.onGone(() => stream.body.cancel('the tab left'));
    const splitter = new LineSplitter();
    let lines: string[] = [];
    let timer: NodeJS.Timeout | undefined;
    const flush = () => {
      clearTimeout(timer);
      timer = undefined;
      if (lines.length === 0) return;
      sink.send({ id: subscription.id, type: 'lines', lines });
      lines = [];
    };
    try {
      for await (const chunk of stream.body) {
        for (const line of splitter.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength))) {
          lines.push(line.toString('utf8').replace(/\r?\n$/, ''));
        }
        if (lines.length >= MAX_BATCH_LINES) flush();
        else timer ??= setTimeout(flush, BATCH_MS / 2);
        // A tab that does not keep up slows the log's reading (and the agent's), not kas's memory.
        while (sink.backlog > LOG_BACKLOG_BYTES && !sink.gone) await sleepUnlessGone(sink, 50);
      }
      const rest = splitter.flush();
      if (rest) lines.push(rest.toString('utf8'));
      flush();
      if (!sink.gone) sink.send({ id: subscription.id, type: 'end' });
    } finally {
      clearTimeout(timer);
      stop();
    }
  };
}

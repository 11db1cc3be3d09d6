// The operators' dashboard: sign in with an API token, then agents, live graphs and live
// Kubernetes tables over ONE socket.io connection per tab.
import './styles.css';
import type { UiAgent } from '../../protocol/ui.ts';
import { ApiError, apiJson, setApiToken } from './api.ts';
import { type ConnectionState, UiConnection } from './connection.ts';
import { type AppContext, traceBadge, type ViewHandle } from './context.ts';
import { clear, h, meta, option } from './dom.ts';
import { decodeLayout, encodeLayout, type Layout, type View } from './lib/layout.ts';
import { grantsAgent, readClaims, tokenProblem } from './lib/token.ts';
import { Trace } from './lib/traceparent.ts';
import { agentsView } from './views/agents.ts';
import { kubernetesView } from './views/kubernetes.ts';

const TOKEN_KEY = 'kas-api-token';
const VIEWS: { view: View; title: string }[] = [
  { view: 'agents', title: 'Agents' },
  { view: 'metrics', title: 'Metrics' },
  { view: 'kubernetes', title: 'Kubernetes' },
];

const traceUiUrl = meta('kas-trace-ui-url');
const nonce = meta('kas-style-nonce');

const header = document.querySelector('header')!;
const nav = document.querySelector('nav')!;
const main = document.querySelector('main')!;
const connStatus = document.querySelector<HTMLElement>('#connection')!;
const lastTrace = document.querySelector<HTMLElement>('#last-trace')!;
const agentPicker = document.querySelector<HTMLSelectElement>('#agent')!;
const signOut = document.querySelector<HTMLButtonElement>('#sign-out')!;

let layout: Layout = decodeLayout(location.hash);
let conn: UiConnection | undefined;
let agents: UiAgent[] = [];
const agentListeners = new Set<(a: UiAgent[]) => void>();
let view: ViewHandle | undefined;
let stopAgents: (() => void) | undefined;
let signInMessage: string | undefined;

function writeLayout(): void {
  const hash = `#${encodeLayout(layout)}`;
  if (location.hash !== hash) history.replaceState(null, '', hash);
  renderNav();
}

function setLayout(patch: Partial<Layout>): void {
  layout = { ...layout, ...patch };
  writeLayout();
}

function action(_what: string): Trace {
  const trace = new Trace();
  clear(lastTrace, traceBadge(traceUiUrl, trace.traceId, 'Last action’s trace'));
  return trace;
}

const ctx: AppContext = {
  get conn() {
    return conn!;
  },
  layout: () => layout,
  setLayout,
  agents: () => agents,
  onAgents(listener) {
    agentListeners.add(listener);
    return () => agentListeners.delete(listener);
  },
  action,
  traceUiUrl,
  nonce,
};

function renderNav(): void {
  clear(
    nav,
    h(
      'ul',
      {},
      ...VIEWS.map(({ view: v, title }) =>
        h('li', {}, h('a', { href: `#${encodeLayout({ ...layout, view: v, object: undefined })}`, 'aria-current': v === layout.view ? 'page' : undefined }, title)),
      ),
    ),
  );
}

function showConnection(s: ConnectionState): void {
  connStatus.dataset.state = s.state;
  switch (s.state) {
    case 'connecting':
      connStatus.textContent = 'Connecting…';
      break;
    case 'connected':
      connStatus.textContent = 'Live';
      connStatus.title = '';
      break;
    case 'lost':
      connStatus.textContent = 'Connection lost; reconnecting…';
      connStatus.title = s.reason;
      break;
    case 'unauthorized':
      signInMessage = `kas refused the token: ${s.message}. Sign in with a new one ("kas token issue").`;
      endSession();
      break;
  }
}

function renderAgentPicker(): void {
  const current = layout.agent;
  const ids = agents.map((a) => a.id).sort();
  if (current && !ids.includes(current)) ids.unshift(current);
  clear(agentPicker, ...(ids.length === 0 ? [option('', 'no agent connected')] : ids.map((id) => option(id, id, id === current))));
  agentPicker.disabled = ids.length === 0;
  if (!current && ids[0]) {
    setLayout({ agent: ids[0] });
    if (layout.view !== 'agents') mountView();
  }
}

async function mountView(): Promise<void> {
  view?.destroy();
  view = undefined;
  const v = layout.view;
  let made: ViewHandle;
  if (v === 'metrics') {
    clear(main, h('p', { role: 'status' }, 'Loading the graph editor…'));
    // The editor and uPlot load on first use; the rest of the page does not wait for them.
    const { metricsView } = await import('./views/metrics.ts');
    if (layout.view !== v || !conn) return;
    made = metricsView(ctx);
  } else if (v === 'kubernetes') made = kubernetesView(ctx);
  else made = agentsView(ctx);
  view = made;
  clear(main, made.element);
  if (layout.agent && !grantsAgent(readClaims(sessionStorage.getItem(TOKEN_KEY) ?? ''), layout.agent)) {
    main.prepend(h('p', { class: 'error', role: 'alert' }, `This token does not grant access to agent ${layout.agent}; ask for a token that lists it.`));
  }
}

function startSession(token: string): void {
  setApiToken(token);
  document.body.classList.add('signed-in');
  header.querySelector('.session')!.removeAttribute('hidden');
  conn = new UiConnection(token, showConnection);
  const trace = action('agents');
  stopAgents = conn.subscribe({
    request: () => ({ kind: 'agents', traceparent: trace.traceparent() }),
    reply: (r) => {
      if (!r.ok) main.prepend(h('p', { class: 'error', role: 'alert' }, `The agents list was refused: ${r.error}`));
    },
    update: (u) => {
      if (u.type !== 'agents') return;
      agents = u.agents;
      renderAgentPicker();
      for (const l of agentListeners) l(agents);
    },
  });
  renderAgentPicker();
  void mountView();
  const exp = readClaims(token)?.exp;
  clearTimeout(expiryTimer);
  if (exp !== undefined) {
    // setTimeout's limit is about 24.8 days; longer tokens are checked again then.
    expiryTimer = setTimeout(() => {
      if (!tokenProblem(token, Date.now())) return;
      signInMessage = tokenProblem(token, Date.now());
      endSession();
    }, Math.min(exp * 1000 - Date.now() + 500, 2 ** 31 - 1));
  }
}
let expiryTimer: ReturnType<typeof setTimeout> | undefined;

function endSession(): void {
  view?.destroy();
  view = undefined;
  stopAgents?.();
  conn?.close();
  conn = undefined;
  agents = [];
  sessionStorage.removeItem(TOKEN_KEY);
  setApiToken('');
  document.body.classList.remove('signed-in');
  header.querySelector('.session')!.setAttribute('hidden', '');
  connStatus.textContent = 'Signed out';
  connStatus.dataset.state = 'signed-out';
  renderSignIn();
}

function renderSignIn(): void {
  const input = h('input', { id: 'token', type: 'password', autocomplete: 'off', spellcheck: 'false', 'aria-describedby': 'token-help sign-in-error' });
  const error = h('p', { id: 'sign-in-error', class: 'error', role: 'alert' }, signInMessage ?? '');
  const submit = h('button', { type: 'submit' }, 'Sign in');
  const form = h(
    'form',
    { class: 'sign-in', 'aria-labelledby': 'sign-in-heading' },
    h('h2', { id: 'sign-in-heading' }, 'Sign in'),
    h('label', { for: 'token' }, 'API token'),
    input,
    h('p', { id: 'token-help', class: 'help' }, 'From "kas token issue --sub <you> --agents <ids> --ttl 8h". It is kept in this tab only (sessionStorage) and never put in a URL.'),
    error,
    submit,
  );
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    void signIn(input.value.trim(), error, submit);
  });
  clear(main, form);
  signInMessage = undefined;
  input.focus();
}

async function signIn(token: string, error: HTMLElement, submit: HTMLButtonElement): Promise<void> {
  const problem = tokenProblem(token, Date.now());
  if (problem) {
    error.textContent = problem;
    return;
  }
  submit.disabled = true;
  error.textContent = '';
  setApiToken(token);
  try {
    // kas's own word on the token (and the words of a 401), before opening the socket.
    const body = await apiJson<{ agents: UiAgent[] }>('/api/v1/agents', action('sign in'));
    sessionStorage.setItem(TOKEN_KEY, token);
    agents = body.agents;
    startSession(token);
  } catch (e) {
    error.textContent =
      e instanceof ApiError && e.status === 401 ? `kas refused the token: ${e.message}` : `Could not reach kas: ${e instanceof Error ? e.message : String(e)}`;
    setApiToken('');
  } finally {
    submit.disabled = false;
  }
}

agentPicker.addEventListener('change', () => {
  setLayout({ agent: agentPicker.value, object: undefined });
  void mountView();
});
signOut.addEventListener('click', () => endSession());
window.addEventListener('hashchange', () => {
  const next = decodeLayout(location.hash);
  const remount = next.view !== layout.view || next.agent !== layout.agent || JSON.stringify(next.panels) !== JSON.stringify(layout.panels);
  layout = next;
  renderNav();
  if (!conn) return;
  renderAgentPicker();
  if (remount) void mountView();
});

renderNav();
const saved = sessionStorage.getItem(TOKEN_KEY);
if (saved && !tokenProblem(saved, Date.now())) startSession(saved);
else {
  if (saved) signInMessage = tokenProblem(saved, Date.now());
  endSession();
}

document.querySelector('#skip')!.addEventListener('click', () => main.focus());

// The query box: CodeMirror 6 with the Prometheus UI's own PromQL mode, completing metric names,
// label names and values from the agent's Prometheus through kas (the HTTP API, with the token
// and a traceparent per completion request). Loaded on demand: the agents view does not pay for it.
import { autocompletion, closeBrackets, closeBracketsKeymap, completionKeymap } from '@codemirror/autocomplete';
import { defaultKeymap, history, historyKeymap, insertNewline } from '@codemirror/commands';
import { bracketMatching, defaultHighlightStyle, syntaxHighlighting } from '@codemirror/language';
import { EditorState } from '@codemirror/state';
import { EditorView, keymap, placeholder } from '@codemirror/view';
import { PromQLExtension } from '@prometheus-io/codemirror-promql';

export interface EditorOptions {
  doc: string;
  label: string;
  /** The agent's Prometheus base URL at kas, `/api/v1/agents/<id>/prometheus`. */
  prometheusUrl: () => string;
  fetchFn: (input: RequestInfo | URL, init?: RequestInit) => Promise<Response>;
  onRun: () => void;
  nonce: string | undefined;
}

export interface QueryEditor {
  value(): string;
  focus(): void;
  destroy(): void;
}

export function createQueryEditor(parent: HTMLElement, o: EditorOptions): QueryEditor {
  const promql = new PromQLExtension().setComplete({
    remote: {
      // The client keeps its URL; the base is put in front at each request instead, so a change
      // of agent takes effect without a new editor.
      url: '',
      httpMethod: 'GET',
      fetchFn: (input, init) => o.fetchFn(`${o.prometheusUrl()}${String(input)}`, init),
      cache: { maxAge: 60_000 },
    },
  });
  const run = () => {
    o.onRun();
    return true;
  };
  const view = new EditorView({
    parent,
    state: EditorState.create({
      doc: o.doc,
      extensions: [
        ...(o.nonce ? [EditorView.cspNonce.of(o.nonce)] : []),
        history(),
        closeBrackets(),
        bracketMatching(),
        autocompletion({ activateOnTyping: true }),
        syntaxHighlighting(defaultHighlightStyle),
        promql.asExtension(),
        placeholder('PromQL, e.g. rate(http_requests_total[5m])'),
        EditorView.lineWrapping,
        EditorView.contentAttributes.of({ 'aria-label': o.label }),
        keymap.of([
          { key: 'Enter', run },
          { key: 'Shift-Enter', run: insertNewline },
          ...closeBracketsKeymap,
          ...completionKeymap,
          ...historyKeymap,
          ...defaultKeymap,
        ]),
      ],
    }),
  });
  return {
    value: () => view.state.doc.toString(),
    focus: () => view.focus(),
    destroy: () => {
      promql.destroy();
      view.destroy();
    },
  };
}

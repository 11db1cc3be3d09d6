// The shape of a hostile case, as the family files (one per family, beside this one) write them:
// plain data saying what to send and what kas must answer. The runner (../runner.ts) turns a
// case into bytes on a raw connection and checks the answer.

/** The base paths of agent `good`'s capabilities on the API port. */
export const PROM = '/api/v1/agents/good/prometheus';
export const KUBE = '/api/v1/agents/good/kubernetes';

/** One request per language: kas's own route, a Prometheus query, a Kubernetes list. */
export const EVERY_LANGUAGE = ['/api/v1/agents/good', `${PROM}/api/v1/query?query=up`, `${KUBE}/api/v1/namespaces/default/pods`] as const;

/** A JWT as a case describes it; the runner signs (or forges) it when the case runs. */
export type TokenSpec =
  /** A valid token for the port: an API token for agent good, as `kas token issue` makes them (a kas-to-kas token on the private port). */
  | 'valid'
  /** The valid API token, whatever the port. */
  | 'api-token'
  | {
      /** Which secret signs it: kas's API secret, its kas-to-kas secret, or one kas never saw. */
      key: 'api' | 'private' | 'stranger' | 'empty';
      /** The JOSE header's alg (default HS256); the HMAC is computed with the matching hash where there is one. */
      alg?: string;
      /** Header fields on top of `{ alg, typ: 'JWT' }`. */
      header?: Record<string, unknown>;
      /**
       * Claims on top of the defaults (`sub: 'hostile'`, `aud: 'kas'` or `'kas-private'` for the
       * private key, `iat: now`, `exp: now + 1 h`, and `agents: ['good']` or `agent: 'good'`).
       * Numbers in `exp`, `nbf` and `iat` are seconds from now; null drops the claim.
       */
      claims?: Record<string, unknown>;
      /** What to do to the token text once signed. */
      mangle?: Mangle;
    }
  /** Exactly this text. */
  | { literal: string };

export type Mangle =
  | 'no-signature'
  | 'truncate-signature'
  | 'flip-signature'
  | 'signature-of-another'
  | 'header-and-payload-only'
  | 'five-segments'
  | 'trailing-dot'
  | 'padded-base64'
  | 'standard-base64'
  | 'truncate-to-half'
  | 'uppercase'
  | 'space-inside';

export type AuthSpec =
  | { bearer: TokenSpec; scheme?: string }
  | { basic: TokenSpec; user?: string }
  /** The Authorization header's value exactly; `{token}` stands for a valid token. */
  | { value: string };

/** The language kas's own error bodies speak under a URL (CONTRACT.md, "Errors kas itself produces"). */
export type Language = 'prometheus' | 'kubernetes' | 'kas';

export interface AnswerExpectation {
  status: number;
  /**
   * The body: an error in a language (`language` = the path's: the Prometheus envelope under
   * /prometheus, a Kubernetes Status under /kubernetes, kas's own shape elsewhere), what the
   * upstream answered (`upstream`), or nothing (`empty`). Unchecked when absent.
   */
  body?: Language | 'language' | 'upstream' | 'empty' | 'json';
  /** Matched against the error's message (error bodies) or the body text (others). */
  message?: RegExp;
  /** Whether the request reached the agent's upstream; by default it did exactly when the status is below 300. */
  reached?: boolean;
  /** Responses on the connection (default 1): a second one is a smuggled request answered. */
  responses?: number;
  /** Headers the answer must carry (matching) or must not carry (null). */
  headers?: Record<string, RegExp | null>;
  /** Request headers the upstream must not have seen. */
  upstreamLacks?: string[];
  /** The connection is closed after the answer (a body was left unread). */
  closes?: boolean;
  /** The answer came no later than this many milliseconds after the request's first byte. */
  withinMs?: number;
  /** ... and no sooner than this. */
  notBeforeMs?: number;
}

/** The connection closed (or was reset) without any answer. */
export interface ClosedExpectation {
  closed: true;
  withinMs?: number;
}

export type Expectation = AnswerExpectation | ClosedExpectation;

/** One piece of a raw request: text (placeholders filled in), or a pause. */
export type RawPiece = string | { pauseMs: number };

export interface HttpCase {
  name: string;
  /** Which of the node's ports (default the API port). */
  port?: 'api' | 'private' | 'agent';
  method?: string;
  /** The request target exactly as it goes on the request line. */
  path?: string;
  /** Run the case once per path here (each run counts as a case), with the same expectation. */
  paths?: readonly string[];
  /** Default: `{ bearer: 'valid' }` on the API port, a valid kas-to-kas token on the private port; null: none. */
  auth?: AuthSpec | null;
  /** Extra header lines, written as given, in order, duplicates and all. */
  headers?: readonly (readonly [string, string])[];
  body?: string;
  /**
   * The whole request as written, instead of the above: placeholders `{auth}` (an Authorization
   * header line for a valid token), `{privauth}` (one with a kas-to-kas token), `{token}`, `{prom}` and `{kube}` (the agent's base paths).
   */
  raw?: readonly RawPiece[];
  /** Runs beside the others rather than in turn: it takes a while (a timeout) and reaches nothing. */
  slow?: boolean;
  expect: Expectation;
}

/**
 * An agent's connection attempt on the agent port: a socket.io handshake (its `auth`, with
 * `{agentToken}` standing for a registered agent's token), or raw WebSocket messages once the
 * WebSocket is open. kas answers with a connection, a `connect_error`, or by closing it.
 */
export interface HandshakeCase {
  name: string;
  auth?: unknown;
  namespace?: string;
  /** Instead of a socket.io client: these engine.io messages on a bare WebSocket (text, or binary). */
  frames?: readonly (string | Uint8Array)[];
  expect: { connected: true } | { connectError: RegExp } | { closedWithin: number };
}

/** What a rogue agent sends for a request, in turn (the request's id filled in). */
export type RogueStep =
  | { head: number; headers?: Record<string, string | string[]> }
  | { data: string }
  /** A chunk of this many bytes. */
  | { dataBytes: number }
  | 'end'
  | { error: string; message?: string }
  /** Any message, as it is, with `id` set to the request's. */
  | { message: Record<string, unknown> }
  | { waitMs: number }
  /** These messages in one event: kas reads them in one go. */
  | { together: readonly Exclude<RogueStep, { waitMs: number } | { together: unknown }>[] };

/**
 * A registered agent that answers a request badly on purpose. The caller asks through the node
 * holding the rogue and through another node (forwarded), and must get the same answer either way.
 */
export interface RogueCase {
  name: string;
  /** What the caller asks: a Prometheus query, a Kubernetes list, or a Kubernetes watch (a stream). */
  ask: 'prometheus' | 'kubernetes' | 'watch';
  script: readonly RogueStep[];
  expect: {
    status: number;
    /** An error in the language of what was asked, or these exact bytes. */
    body?: Language | 'language' | { exactly: string };
    message?: RegExp;
    /** How the answer ended: as its framing said (`clean`), or cut short. */
    ended: 'clean' | 'cut';
    headers?: Record<string, RegExp | null>;
    withinMs?: number;
    notBeforeMs?: number;
  };
}

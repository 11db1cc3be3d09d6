// Runs hostile HTTP cases (corpus/case.ts) against a target: writes each as raw bytes, reads what
// comes back, and checks it against the case's expected answer, the upstreams' logs included.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { parseAgentUrl } from '../../server/http/agentUrl.ts';
import { io as ioClient } from 'socket.io-client';
import type { RogueAgent } from './rogue.ts';
import { type AnswerExpectation, type AuthSpec, type HandshakeCase, type HttpCase, type RogueCase, KUBE, type Language, type Mangle, PROM, type RawPiece, type TokenSpec } from './corpus/case.ts';
import type { HostileTarget } from './target.ts';
import { exchange, type WireAnswer, type WireChunk, type WireResponse } from './wire.ts';


const b64url = (data: string | Buffer) => Buffer.from(data).toString('base64url');
const HASHES: Record<string, string> = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' };

/** The text of a token spec, signed with the target's secrets (or forged without them). */
export function tokenText(target: HostileTarget, spec: TokenSpec, audience: 'api' | 'private' = 'api'): string {
  if (spec === 'api-token') return target.token;
  if (spec === 'valid') return audience === 'api' ? target.token : tokenText(target, { key: 'private' });
  if ('literal' in spec) return spec.literal;
  const now = Math.floor(Date.now() / 1000);
  const isPrivate = spec.key === 'private';
  const claims: Record<string, unknown> = isPrivate
    ? { sub: 'hostile', aud: 'kas-private', agent: 'good', iat: now, exp: now + 30 }
    : { sub: 'hostile', aud: 'kas', agents: ['good'], iat: now, exp: now + 3600 };
  for (const [name, value] of Object.entries(spec.claims ?? {})) {
    if (value === null) delete claims[name];
    else claims[name] = ['exp', 'nbf', 'iat'].includes(name) && typeof value === 'number' ? now + value : value;
  }
  const alg = spec.alg ?? 'HS256';
  const header = { alg, typ: 'JWT', ...spec.header };
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  const key = spec.key === 'api' ? target.apiSecret : spec.key === 'private' ? target.privateSecret : spec.key === 'empty' ? new Uint8Array() : Buffer.from('a stranger kas never met, 32 bytes long!');
  const hash = HASHES[alg.toUpperCase()] ?? 'sha256';
  const signature = alg === 'none' ? '' : createHmac(hash, key).update(input).digest('base64url');
  return mangle(`${input}.${signature}`, spec.mangle, target);
}

function mangle(token: string, how: Mangle | undefined, target: HostileTarget): string {
  const [header, payload, signature] = token.split('.') as [string, string, string];
  switch (how) {
    case undefined:
      return token;
    case 'no-signature':
      return `${header}.${payload}.`;
    case 'truncate-signature':
      return `${header}.${payload}.${signature.slice(0, -2)}`;
    case 'flip-signature':
      return `${header}.${payload}.${signature[0] === 'A' ? 'B' : 'A'}${signature.slice(1)}`;
    case 'signature-of-another':
      return `${header}.${payload}.${target.token.split('.')[2]}`;
    case 'header-and-payload-only':
      return `${header}.${payload}`;
    case 'five-segments':
      return `${token}.${header}.${payload}`;
    case 'trailing-dot':
      return `${token}.`;
    case 'padded-base64':
      return `${header}==.${payload}.${signature}`;
    case 'standard-base64':
      return token.replaceAll('-', '+').replaceAll('_', '/') + (/[-_]/.test(token) ? '' : '+');
    case 'truncate-to-half':
      return token.slice(0, Math.floor(token.length / 2));
    case 'uppercase':
      return token.toUpperCase();
    case 'space-inside':
      return `${header}. ${payload}.${signature}`;
  }
}

function authLine(target: HostileTarget, auth: AuthSpec | null | undefined, port: HttpCase['port']): string {
  if (auth === null) return '';
  const audience = port === 'private' ? 'private' : 'api';
  if (auth === undefined) return port === 'agent' ? '' : `Authorization: Bearer ${tokenText(target, 'valid', audience)}\r\n`;
  if ('value' in auth) return `Authorization: ${auth.value.replaceAll('{token}', target.token)}\r\n`;
  if ('bearer' in auth) return `Authorization: ${auth.scheme ?? 'Bearer'} ${tokenText(target, auth.bearer, audience)}\r\n`;
  const credentials = `${auth.user ?? 'promtool'}:${tokenText(target, auth.basic, audience)}`;
  return `Authorization: Basic ${Buffer.from(credentials).toString('base64')}\r\n`;
}

function fill(target: HostileTarget, text: string): string {
  return text
    .replaceAll('{auth}', authLine(target, undefined, 'api'))
    .replaceAll('{privauth}', authLine(target, undefined, 'private'))
    .replaceAll('{token}', target.token)
    .replaceAll('{prom}', PROM)
    .replaceAll('{kube}', KUBE)
    .replaceAll('{host}', `127.0.0.1:${target.ports.api}`);
}

/** The bytes of a case (with `path` as its target), ready to write. */
export function requestBytes(target: HostileTarget, c: HttpCase, path: string): WireChunk[] {
  if (c.raw) return c.raw.map((piece: RawPiece) => (typeof piece === 'string' ? fill(target, piece) : piece));
  const port = target.ports[c.port ?? 'api'];
  const given = new Set((c.headers ?? []).map(([name]) => name.toLowerCase()));
  const lines = [`${c.method ?? 'GET'} ${path} HTTP/1.1\r\n`];
  if (!given.has('host')) lines.push(`Host: 127.0.0.1:${port}\r\n`);
  lines.push(authLine(target, c.auth, c.port));
  for (const [name, value] of c.headers ?? []) lines.push(`${name}: ${fill(target, value)}\r\n`);
  if (c.body !== undefined && !given.has('content-length') && !given.has('transfer-encoding')) lines.push(`Content-Length: ${Buffer.byteLength(c.body)}\r\n`);
  if (!given.has('connection')) lines.push('Connection: close\r\n');
  lines.push('\r\n');
  if (c.body !== undefined) lines.push(c.body);
  return [lines.join('')];
}

/** The language kas's own errors take under a request target. */
export function languageOf(path: string): Language {
  const capability = parseAgentUrl(path)?.capability;
  return capability === 'prometheus' || capability === 'kubernetes' ? capability : 'kas';
}

function describeAnswer(answer: WireAnswer): string {
  const parts = answer.responses.map((r) => `${r.rawHead}\n\n${r.body.subarray(0, 600).toString()}${r.complete ? '' : ' [incomplete]'}`);
  return `${answer.responses.length} response(s)${answer.closed ? ', closed' : ''}${answer.reset ? ', reset' : ''} after ${Math.round(answer.elapsedMs)} ms\n${parts.join('\n---\n')}`;
}

/** The message of an error body in `language`, after checking its shape. */
export function errorMessage(response: WireResponse, language: Language): string {
  const text = response.body.toString();
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    return assert.fail(`not JSON: ${text.slice(0, 200)}`);
  }
  switch (language) {
    case 'prometheus':
      assert.equal(body.status, 'error', 'a Prometheus envelope');
      assert.equal(typeof body.errorType, 'string');
      assert.equal(typeof body.error, 'string');
      return body.error as string;
    case 'kubernetes':
      assert.equal(body.kind, 'Status', 'a Kubernetes Status');
      assert.equal(body.status, 'Failure');
      assert.equal(body.code, response.status);
      assert.equal(typeof body.reason, 'string');
      return body.message as string;
    case 'kas': {
      const error = body.error as { code?: unknown; message?: unknown; traceId?: unknown } | undefined;
      assert.equal(typeof error?.code, 'string', "kas's own error shape");
      assert.equal(typeof error?.message, 'string');
      assert.match(String(error?.traceId), /^[0-9a-f]{32}$/);
      return error!.message as string;
    }
  }
}

function checkAnswer(c: HttpCase, path: string, answer: WireAnswer, expect: AnswerExpectation, reached: number, headersSeen: Record<string, unknown>[]): void {
  assert.equal(answer.responses.length, expect.responses ?? 1, 'responses on the connection');
  const response = answer.responses[0]!;
  assert.equal(response.status, expect.status, 'status');
  if (c.port !== 'agent') assert.match(response.headers['x-trace-id'] ?? '', /^[0-9a-f]{32}$/, 'X-Trace-Id');
  const language = expect.body === 'language' ? languageOf(path) : expect.body;
  if (language === 'prometheus' || language === 'kubernetes' || language === 'kas') {
    const message = errorMessage(response, language);
    if (expect.message) assert.match(message, expect.message, 'the error message');
  } else {
    if (language === 'empty') assert.equal(response.body.length, 0, 'no body');
    if (language === 'json') JSON.parse(response.body.toString());
    if (expect.message) assert.match(response.body.toString(), expect.message, 'the body');
  }
  for (const [name, value] of Object.entries(expect.headers ?? {})) {
    if (value === null) assert.equal(response.headers[name.toLowerCase()], undefined, `no ${name} header`);
    else assert.match(response.headers[name.toLowerCase()] ?? '', value, `the ${name} header`);
  }
  const shouldReach = expect.reached ?? (expect.status < 300 && languageOf(path) !== 'kas');
  assert.equal(reached > 0, shouldReach, shouldReach ? 'the request reached an upstream' : 'nothing reached an upstream');
  for (const name of expect.upstreamLacks ?? []) {
    for (const headers of headersSeen) assert.equal(headers[name.toLowerCase()], undefined, `the upstream saw ${name}`);
  }
  if (expect.closes) assert.ok(answer.closed, 'the connection was closed after the answer');
  if (expect.withinMs !== undefined) assert.ok(answer.elapsedMs <= expect.withinMs, `answered after ${Math.round(answer.elapsedMs)} ms`);
  if (expect.notBeforeMs !== undefined) assert.ok(answer.elapsedMs >= expect.notBeforeMs, `answered after only ${Math.round(answer.elapsedMs)} ms`);
}

/** Runs one case at one of its paths; throws an assertion error that shows the whole answer. */
export async function runCase(target: HostileTarget, c: HttpCase, path: string): Promise<void> {
  const port = target.ports[c.port ?? 'api'];
  const mark = target.mark();
  const expect = c.expect;
  const waitMs = 'closed' in expect ? (expect.withinMs ?? 3_000) + 1_000 : Math.max(5_000, (expect.withinMs ?? 0) + 1_000);
  // A case that says the connection closes waits for the close, not just for quiet.
  const idleMs = 'closes' in expect && expect.closes ? waitMs : undefined;
  const answer = await exchange(port, requestBytes(target, c, path), { timeoutMs: waitMs, idleMs, head: (c.method ?? 'GET') === 'HEAD' });
  // An upstream may log a request a moment after kas answered (a refused body still streaming).
  const seen = target.headersSince(mark);
  try {
    if ('closed' in expect) {
      assert.equal(answer.responses.length, 0, 'no answer');
      assert.ok(answer.closed, 'the connection was closed');
      if (expect.withinMs !== undefined) assert.ok(answer.elapsedMs <= expect.withinMs, `closed after ${Math.round(answer.elapsedMs)} ms`);
      assert.equal(seen.length, 0, 'nothing reached an upstream');
    } else {
      checkAnswer(c, path, answer, expect, seen.length, seen);
    }
  } catch (error) {
    const request = requestBytes(target, c, path)
      .map((p) => (typeof p === 'object' && 'pauseMs' in p ? `<pause ${p.pauseMs} ms>` : String(p)))
      .join('')
      .slice(0, 1500);
    const failure = error as Error;
    failure.message += `\n--- sent ---\n${request}\n--- got ---\n${describeAnswer(answer)}`;
    failure.stack = `${failure.name}: ${failure.message}`;
    throw failure;
  }
}

/** The (case, path) runs of a family. */
export function expand(cases: readonly HttpCase[]): { c: HttpCase; path: string; title: string }[] {
  return cases.flatMap((c) => {
    const paths = c.paths ?? [c.path ?? '/'];
    return paths.map((path) => ({ c, path, title: paths.length > 1 || c.raw ? `${c.name} — ${c.raw ? 'raw' : path.slice(0, 120)}` : `${c.name} — ${path.slice(0, 120)}` }));
  });
}

/** `{agentToken}` and `{apiToken}` in the strings of a handshake's auth, filled in. */
function fillAuth(value: unknown, tokens: { agentToken: string; apiToken: string }): unknown {
  if (typeof value === 'string') return value.replaceAll('{agentToken}', tokens.agentToken).replaceAll('{apiToken}', tokens.apiToken);
  if (Array.isArray(value)) return value.map((v) => fillAuth(v, tokens));
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined).map(([k, v]) => [k, fillAuth(v, tokens)]));
  return value;
}

/** Runs one handshake case against an agent port; `agentToken` is a registered agent's token. */
export async function runHandshakeCase(agentUrl: string, c: HandshakeCase, tokens: { agentToken: string; apiToken: string }): Promise<void> {
  if (c.frames) return runFrames(agentUrl, c);
  const socket = ioClient(`${agentUrl}${c.namespace ?? ''}`, {
    transports: ['websocket'],
    reconnection: false,
    forceNew: true,
    timeout: 5_000,
    ...(c.auth === undefined ? {} : { auth: fillAuth(c.auth, tokens) as Record<string, unknown> }),
  });
  try {
    const outcome = await new Promise<{ connected: true } | { error: string }>((resolve) => {
      socket.once('connect', () => resolve({ connected: true }));
      socket.once('connect_error', (error) => resolve({ error: error.message }));
    });
    if ('connected' in c.expect) assert.deepEqual(outcome, { connected: true });
    else if ('connectError' in c.expect) {
      assert.ok('error' in outcome, 'a connect_error, not a connection');
      assert.match(outcome.error, c.expect.connectError);
    }
  } finally {
    socket.close();
  }
}

/** Raw engine.io frames on a bare WebSocket, after the engine's open packet. */
async function runFrames(agentUrl: string, c: HandshakeCase): Promise<void> {
  const ws = new WebSocket(`${agentUrl}/socket.io/?EIO=4&transport=websocket`);
  ws.binaryType = 'arraybuffer';
  const closed = new Promise<number>((resolve) => ws.addEventListener('close', () => resolve(performance.now())));
  await new Promise<void>((resolve, reject) => {
    ws.addEventListener('message', () => resolve(), { once: true });
    ws.addEventListener('error', () => reject(new Error('the WebSocket did not open')), { once: true });
  });
  const sent = performance.now();
  for (const frame of c.frames!) ws.send(frame);
  const within = 'closedWithin' in c.expect ? c.expect.closedWithin : 2_000;
  const closedAt = await Promise.race([closed, new Promise<undefined>((r) => setTimeout(() => r(undefined), within + 500))]);
  ws.close();
  assert.ok(closedAt !== undefined && closedAt - sent <= within, `kas did not close the WebSocket within ${within} ms`);
}

const ROGUE_PATHS: Record<RogueCase['ask'], string> = {
  prometheus: '/api/v1/agents/rogue/prometheus/api/v1/query?query=up',
  kubernetes: '/api/v1/agents/rogue/kubernetes/api/v1/namespaces/default/pods?limit=5',
  watch: '/api/v1/agents/rogue/kubernetes/api/v1/namespaces/default/pods?watch=1',
};

/** Runs one rogue case through the API port `port` (the rogue's node, or another that forwards to it). */
export async function runRogueCase(port: number, rogue: RogueAgent, c: RogueCase, tag: string, token: string): Promise<void> {
  rogue.scripts.set(tag, c.script);
  const path = `${ROGUE_PATHS[c.ask]}&case=${tag}`;
  const request = `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${token}\r\nConnection: close\r\n\r\n`;
  const answer = await exchange(port, [request], { timeoutMs: 8_000, idleMs: 8_000 });
  try {
    assert.ok(rogue.requests.has(tag), 'the request reached the rogue');
    assert.equal(answer.responses.length, 1, 'one answer');
    const response = answer.responses[0]!;
    const expect = c.expect;
    assert.equal(response.status, expect.status, 'status');
    assert.match(response.headers['x-trace-id'] ?? '', /^[0-9a-f]{32}$/, 'X-Trace-Id');
    const language = expect.body === 'language' ? (c.ask === 'prometheus' ? 'prometheus' : 'kubernetes') : expect.body;
    if (typeof language === 'object') assert.equal(response.body.toString(), language.exactly, 'the body the caller got');
    else if (language) {
      const message = errorMessage(response, language);
      if (expect.message) assert.match(message, expect.message, 'the error message');
    }
    assert.equal(response.complete ? 'clean' : 'cut', expect.ended, 'how the answer ended');
    for (const [name, value] of Object.entries(expect.headers ?? {})) {
      if (value === null) assert.equal(response.headers[name], undefined, `no ${name} header`);
      else assert.match(response.headers[name] ?? '', value, `the ${name} header`);
    }
    if (expect.withinMs !== undefined) assert.ok(answer.elapsedMs <= expect.withinMs, `over after ${Math.round(answer.elapsedMs)} ms`);
    if (expect.notBeforeMs !== undefined) assert.ok(answer.elapsedMs >= expect.notBeforeMs, `over after only ${Math.round(answer.elapsedMs)} ms`);
  } catch (error) {
    const failure = error as Error;
    failure.message += `\n--- asked ---\n${path}\n--- got ---\n${describeAnswer(answer)}`;
    failure.stack = `${failure.name}: ${failure.message}`;
    throw failure;
  }
}

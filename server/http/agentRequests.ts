// Turns an HTTP request for `…/agents/{id}/{upstream}/{path}` into a checked AgentRequestSpec:
// shared by the API port (callers) and the private port (other kas nodes).
import type { Request } from 'express';
import { AGENT_ID_PATTERN, REQUEST_BODY_MAX_BYTES, type Upstream } from '../../protocol/messages.ts';
import type { CapabilityChecks } from '../modules/capability.ts';
import type { AgentRequestSpec } from '../routing/spec.ts';
import { KasError } from './errors.ts';

const AGENT_URL = /^\/(?:api|private)\/v1\/agents\/([^/?]+)\/([a-z]+)(\/[^?]*)?(?:\?(.*))?$/s;

export interface AgentUrl {
  agentId: string;
  upstream: string;
  rawPath: string;
  query: string;
}

export function parseAgentUrl(url: string): AgentUrl | undefined {
  const match = AGENT_URL.exec(url);
  if (!match) return undefined;
  return { agentId: match[1]!, upstream: match[2]!, rawPath: match[3] ?? '/', query: match[4] ?? '' };
}

export function checkAgentId(id: string): void {
  if (!AGENT_ID_PATTERN.test(id)) throw new KasError('not_found', `agent id "${id}" is not valid: ids are 1-63 characters of A-Za-z0-9._-`);
}

async function readBody(req: Request): Promise<Buffer | undefined> {
  if (req.method !== 'POST') return undefined;
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > REQUEST_BODY_MAX_BYTES) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.byteLength;
    if (size > REQUEST_BODY_MAX_BYTES) throw tooLarge();
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

function tooLarge(): KasError {
  return new KasError('payload_too_large', `request bodies above ${REQUEST_BODY_MAX_BYTES} bytes are refused`);
}

export async function buildSpec(
  req: Request,
  url: AgentUrl,
  checks: CapabilityChecks,
  timeoutMs: number,
): Promise<AgentRequestSpec> {
  const check = checks[url.upstream as Upstream];
  if (!check) throw new KasError('not_found', `kas offers no "${url.upstream}" API; use prometheus or kubernetes`);
  const checked = check({ method: req.method, rawPath: url.rawPath, query: url.query, headers: req.headers });
  return {
    agentId: url.agentId,
    upstream: url.upstream as Upstream,
    method: checked.method,
    path: checked.path,
    query: url.query,
    headers: checked.headers,
    body: await readBody(req),
    streaming: checked.streaming,
    timeoutMs: checked.streaming ? 0 : timeoutMs,
  };
}

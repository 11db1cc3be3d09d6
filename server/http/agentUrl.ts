// `…/agents/{id}/{capability}/{path}` on the API port (callers) and the private port (other kas nodes).
import { AGENT_ID_PATTERN } from '../../protocol/messages.ts';
import { KasError } from '../routing/errors.ts';

const AGENT_URL = /^\/(?:api|private)\/v1\/agents\/([^/?]+)\/([a-z]+)(\/[^?]*)?(?:\?(.*))?$/s;

export interface AgentUrl {
  agentId: string;
  capability: string;
  rawPath: string;
  query: string;
}

export function parseAgentUrl(url: string): AgentUrl | undefined {
  const match = AGENT_URL.exec(url);
  if (!match) return undefined;
  return { agentId: match[1]!, capability: match[2]!, rawPath: match[3] ?? '/', query: match[4] ?? '' };
}

/** The one check of an agent id in a URL: 404 when it cannot be an agent's. */
export function checkAgentId(id: string): void {
  if (!AGENT_ID_PATTERN.test(id)) throw new KasError('not_found', `agent id "${id}" is not valid: ids are 1-63 characters of A-Za-z0-9._-`);
}

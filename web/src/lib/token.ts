// What the API token says about itself, read without verifying it (kas verifies): who it is for,
// which agents and until when, so the sign-in can say "expired at 14:02" before asking kas.

export interface TokenClaims {
  sub?: string;
  /** Seconds since the epoch. */
  exp?: number;
  agents?: string[];
}

function base64UrlDecode(part: string): string {
  const b64 = part.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(part.length / 4) * 4, '=');
  const binary = atob(b64);
  const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
  return new TextDecoder().decode(bytes);
}

/** The claims of a JWT, or undefined when the text is not one. */
export function readClaims(token: string): TokenClaims | undefined {
  const parts = token.trim().split('.');
  if (parts.length !== 3 || !parts[1]) return undefined;
  try {
    const claims = JSON.parse(base64UrlDecode(parts[1])) as Record<string, unknown>;
    if (claims === null || typeof claims !== 'object') return undefined;
    return {
      sub: typeof claims.sub === 'string' ? claims.sub : undefined,
      exp: typeof claims.exp === 'number' ? claims.exp : undefined,
      agents: Array.isArray(claims.agents) ? claims.agents.filter((a): a is string => typeof a === 'string') : undefined,
    };
  } catch {
    return undefined;
  }
}

/** Why a token cannot work before kas is even asked, or undefined. */
export function tokenProblem(token: string, nowMs: number): string | undefined {
  const t = token.trim();
  if (!t) return 'Paste an API token (kas token issue --sub <you> --agents <ids> --ttl 8h).';
  if (t.startsWith('kasat_')) return 'That is an agent token (kasat_…); the dashboard needs an API token from "kas token issue".';
  const claims = readClaims(t);
  if (!claims) return 'That is not an API token: expected a JWT (three dot-separated parts, starting "eyJ").';
  if (claims.exp !== undefined && claims.exp * 1000 <= nowMs) {
    return `This token expired at ${new Date(claims.exp * 1000).toLocaleString()}; issue a new one with "kas token issue".`;
  }
  return undefined;
}

export function grantsAgent(claims: TokenClaims | undefined, agentId: string): boolean {
  if (!claims?.agents) return true;
  return claims.agents.includes('*') || claims.agents.includes(agentId);
}

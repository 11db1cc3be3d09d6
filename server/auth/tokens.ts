// API tokens (what Rails signs) and kas-to-kas tokens: both HS256 JWTs, told apart by audience
// and secret.
import { errors, jwtVerify, SignJWT } from 'jose';
import { z } from 'zod';
import { AGENT_ID_PATTERN } from '../../protocol/messages.ts';

export const API_AUDIENCE = 'kas';
export const PRIVATE_AUDIENCE = 'kas-private';
export const PRIVATE_TOKEN_MAX_LIFETIME_S = 60;

export interface Caller {
  sub: string;
  /** Agent ids this caller may reach, or '*' for all. */
  agents: ReadonlySet<string> | '*';
}

export class UnauthenticatedError extends Error {
  override name = 'UnauthenticatedError';
}

const ApiClaimsSchema = z.object({
  sub: z.string().min(1).max(256),
  agents: z.array(z.union([z.literal('*'), z.string().regex(AGENT_ID_PATTERN)])).max(10_000),
});

/**
 * Verified tokens, remembered until they expire: checking an HS256 signature through WebCrypto
 * costs more than everything else kas does for a small request, and callers (Rails, kubectl, the
 * dashboard) send the same token again and again. Keyed by the secret object and the exact token
 * text, so only a byte-identical token already verified with the same secret skips the check;
 * expiry is still checked on every use. Failures are never remembered.
 */
class VerifiedCache<T> {
  static readonly MAX_ENTRIES = 10_000;
  #bySecret = new WeakMap<Uint8Array, Map<string, { value: T; expMs: number }>>();

  get(secret: Uint8Array, jwt: string): T | undefined {
    const entries = this.#bySecret.get(secret);
    const entry = entries?.get(jwt);
    if (!entry) return undefined;
    if (entry.expMs <= Date.now()) {
      entries!.delete(jwt);
      return undefined;
    }
    return entry.value;
  }

  set(secret: Uint8Array, jwt: string, value: T, expSeconds: number): void {
    let entries = this.#bySecret.get(secret);
    if (!entries) this.#bySecret.set(secret, (entries = new Map()));
    if (entries.size >= VerifiedCache.MAX_ENTRIES) entries.delete(entries.keys().next().value!);
    entries.set(jwt, { value, expMs: expSeconds * 1000 });
  }
}

const verifiedApiTokens = new VerifiedCache<Caller>();
const verifiedPrivateTokens = new VerifiedCache<PrivateClaims>();

export function callerMayReach(caller: Caller, agentId: string): boolean {
  return caller.agents === '*' || caller.agents.has(agentId);
}

/** The JWT from `Authorization: Bearer <jwt>` or the password of `Authorization: Basic`. */
export function credentialFromHeader(header: string | undefined): string | undefined {
  if (!header) return undefined;
  // Exactly a scheme and one credential: `Bearer <jwt> more` is no credential kas can read.
  const parts = header.trim().split(/\s+/);
  if (parts.length !== 2) return undefined;
  const [scheme, value] = parts as [string, string];
  if (scheme.toLowerCase() === 'bearer') return value;
  if (scheme.toLowerCase() === 'basic') {
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    return colon >= 0 ? decoded.slice(colon + 1) : undefined;
  }
  return undefined;
}

function describe(error: unknown): string {
  if (error instanceof errors.JWTExpired) return 'the API token has expired; ask for a new one';
  if (error instanceof errors.JWTClaimValidationFailed) return `the API token is not valid for kas (${error.claim} claim)`;
  if (error instanceof errors.JOSEAlgNotAllowed) return 'the API token must be signed with HS256';
  if (error instanceof errors.JWSSignatureVerificationFailed) return 'the API token signature does not verify';
  return 'the API token is malformed';
}

export async function verifyApiToken(secret: Uint8Array, header: string | undefined): Promise<Caller> {
  const jwt = credentialFromHeader(header);
  if (!jwt) {
    throw new UnauthenticatedError(
      'no API token: send Authorization: Bearer <token> (or the token as the Basic-auth password)',
    );
  }
  const known = verifiedApiTokens.get(secret, jwt);
  if (known) return known;
  let payload;
  try {
    ({ payload } = await jwtVerify(jwt, secret, {
      audience: API_AUDIENCE,
      algorithms: ['HS256'],
      requiredClaims: ['exp', 'sub'],
    }));
  } catch (error) {
    throw new UnauthenticatedError(describe(error));
  }
  const claims = ApiClaimsSchema.safeParse(payload);
  if (!claims.success) throw new UnauthenticatedError('the API token has no valid "sub" and "agents" claims');
  const { sub, agents } = claims.data;
  const caller: Caller = { sub, agents: agents.includes('*') ? '*' : new Set(agents) };
  verifiedApiTokens.set(secret, jwt, caller, payload.exp!);
  return caller;
}

export async function issueApiToken(
  secret: Uint8Array,
  options: { sub: string; agents: string[]; ttlMs: number },
): Promise<string> {
  return new SignJWT({ agents: options.agents })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(options.sub)
    .setAudience(API_AUDIENCE)
    .setIssuedAt()
    .setExpirationTime(Math.floor((Date.now() + options.ttlMs) / 1000))
    .sign(secret);
}

/** What a forwarding node vouches for when it hands a request to the node holding the agent. */
export interface PrivateClaims {
  sub: string;
  agent: string;
  /** The replica the forwarding node picked; the owner uses another local one if it is gone. */
  replica: string | undefined;
}

const PrivateClaimsSchema = z.object({
  sub: z.string(),
  agent: z.string().regex(AGENT_ID_PATTERN),
  replica: z.string().optional(),
  iat: z.number(),
  exp: z.number(),
});

/** Signed kas-to-kas tokens, reused for a third of their 30 s life. */
const signedPrivateTokens = new WeakMap<Uint8Array, Map<string, { token: string; renewAt: number }>>();
const PRIVATE_TOKEN_REUSE_MS = 10_000;

export async function signPrivateToken(secret: Uint8Array, claims: PrivateClaims): Promise<string> {
  let signed = signedPrivateTokens.get(secret);
  if (!signed) signedPrivateTokens.set(secret, (signed = new Map()));
  const key = `${claims.sub}\0${claims.agent}\0${claims.replica ?? ''}`;
  const now = Date.now();
  const reuse = signed.get(key);
  if (reuse && reuse.renewAt > now) return reuse.token;
  const token = await newPrivateToken(secret, claims);
  if (signed.size >= VerifiedCache.MAX_ENTRIES) signed.clear();
  signed.set(key, { token, renewAt: now + PRIVATE_TOKEN_REUSE_MS });
  return token;
}

function newPrivateToken(secret: Uint8Array, claims: PrivateClaims): Promise<string> {
  return new SignJWT({ agent: claims.agent, ...(claims.replica ? { replica: claims.replica } : {}) })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(claims.sub)
    .setAudience(PRIVATE_AUDIENCE)
    .setIssuedAt()
    .setExpirationTime('30s')
    .sign(secret);
}

export async function verifyPrivateToken(secret: Uint8Array, header: string | undefined): Promise<PrivateClaims> {
  const jwt = credentialFromHeader(header);
  if (!jwt) throw new UnauthenticatedError('no kas-to-kas token');
  const known = verifiedPrivateTokens.get(secret, jwt);
  if (known) return known;
  try {
    const { payload } = await jwtVerify(jwt, secret, {
      audience: PRIVATE_AUDIENCE,
      algorithms: ['HS256'],
      requiredClaims: ['exp', 'iat', 'sub'],
    });
    const claims = PrivateClaimsSchema.parse(payload);
    if (claims.exp - claims.iat > PRIVATE_TOKEN_MAX_LIFETIME_S) throw new Error('lifetime too long');
    const verified = { sub: claims.sub, agent: claims.agent, replica: claims.replica };
    verifiedPrivateTokens.set(secret, jwt, verified, claims.exp);
    return verified;
  } catch {
    throw new UnauthenticatedError('invalid kas-to-kas token');
  }
}

// Forged and mangled API tokens. Each case runs once per language (kas's own route, a Prometheus
// query, a Kubernetes list): a token kas does not accept is 401 (403 when it is sound but does not
// reach the agent) in that path's language, and nothing reaches an upstream.
import { EVERY_LANGUAGE, type HttpCase } from './case.ts';

const paths = EVERY_LANGUAGE;
const refused = (message: RegExp) => ({ status: 401, body: 'language', message, headers: { 'www-authenticate': /Bearer/ } }) as const;
const outOfScope = { status: 403, body: 'language', message: /does not grant access to agent good/ } as const;
const accepted = { status: 200 } as const;
const malformed = refused(/malformed|not valid|signature/);

export const tokenCases: HttpCase[] = [
  // The header itself
  { name: 'no Authorization header', paths, auth: null, expect: refused(/no API token/) },
  { name: 'an empty Authorization header', paths, auth: { value: '' }, expect: refused(/no API token/) },
  { name: 'the Bearer scheme with no token', paths, auth: { value: 'Bearer' }, expect: refused(/no API token/) },
  { name: 'the Bearer scheme and spaces only', paths, auth: { value: 'Bearer    ' }, expect: refused(/no API token/) },
  { name: 'a valid token (the control)', paths, auth: { bearer: 'valid' }, expect: accepted },
  { name: 'the scheme in lower case (schemes are case-insensitive)', paths, auth: { bearer: 'valid', scheme: 'bearer' }, expect: accepted },
  { name: 'the scheme in upper case', paths, auth: { bearer: 'valid', scheme: 'BEARER' }, expect: accepted },
  { name: 'a tab between scheme and token', paths, auth: { value: 'Bearer\t{token}' }, expect: accepted },
  { name: 'an unknown scheme', paths, auth: { bearer: 'valid', scheme: 'Token' }, expect: refused(/no API token/) },
  { name: 'the Digest scheme', paths, auth: { bearer: 'valid', scheme: 'Digest' }, expect: refused(/no API token/) },
  { name: 'a word after the token', paths, auth: { value: 'Bearer {token} extra' }, expect: refused(/no API token/) },
  { name: 'two tokens in one header', paths, auth: { value: 'Bearer {token}, Bearer {token}' }, expect: refused(/no API token|malformed/) },
  { name: 'the token twice, comma-joined', paths, auth: { value: 'Bearer {token},{token}' }, expect: malformed },
  {
    name: 'two Authorization headers, the valid one first',
    paths,
    auth: { bearer: 'valid' },
    headers: [['Authorization', 'Bearer nonsense']],
    expect: { status: 400, body: 'language', message: /more than one Authorization/ },
  },
  {
    name: 'two Authorization headers, the valid one second',
    paths,
    auth: { value: 'Bearer nonsense' },
    headers: [['Authorization', 'Bearer {token}']],
    expect: { status: 400, body: 'language', message: /more than one Authorization/ },
  },
  { name: 'the same valid Authorization header twice', paths, headers: [['authorization', 'Bearer {token}']], expect: { status: 400, body: 'language', message: /more than one Authorization/ } },
  { name: 'the token in the query string only', paths: paths.map((p) => `${p}${p.includes('?') ? '&' : '?'}access_token={token}`), auth: null, expect: refused(/no API token/) },
  { name: 'the token in a cookie only', paths, auth: null, headers: [['Cookie', 'token={token}; kas={token}']], expect: refused(/no API token/) },
  { name: 'the token in X-Auth-Token only', paths, auth: null, headers: [['X-Auth-Token', '{token}']], expect: refused(/no API token/) },
  { name: 'the token in Proxy-Authorization only', paths, auth: null, headers: [['Proxy-Authorization', 'Bearer {token}']], expect: refused(/no API token/) },

  // The algorithm
  { name: 'alg none, no signature', paths, auth: { bearer: { key: 'api', alg: 'none' } }, expect: refused(/HS256|malformed/) },
  { name: 'alg none with the right signature', paths, auth: { bearer: { key: 'api', alg: 'none', mangle: 'signature-of-another' } }, expect: refused(/HS256|malformed|signature/) },
  { name: 'alg None', paths, auth: { bearer: { key: 'api', alg: 'None' } }, expect: refused(/HS256|malformed/) },
  { name: 'alg NONE', paths, auth: { bearer: { key: 'api', alg: 'NONE' } }, expect: refused(/HS256|malformed/) },
  { name: 'alg HS512 with the right key', paths, auth: { bearer: { key: 'api', alg: 'HS512' } }, expect: refused(/HS256/) },
  { name: 'alg HS384 with the right key', paths, auth: { bearer: { key: 'api', alg: 'HS384' } }, expect: refused(/HS256/) },
  { name: 'alg hs256 (lower case)', paths, auth: { bearer: { key: 'api', alg: 'hs256' } }, expect: refused(/HS256/) },
  { name: 'alg RS256 over an HMAC with the secret (key confusion)', paths, auth: { bearer: { key: 'api', alg: 'RS256' } }, expect: refused(/HS256/) },
  { name: 'alg ES256', paths, auth: { bearer: { key: 'api', alg: 'ES256' } }, expect: refused(/HS256/) },
  { name: 'alg PS256', paths, auth: { bearer: { key: 'api', alg: 'PS256' } }, expect: refused(/HS256/) },
  { name: 'no alg at all', paths, auth: { bearer: { key: 'api', header: { alg: undefined } } }, expect: malformed },
  { name: 'a crit header kas does not know', paths, auth: { bearer: { key: 'api', header: { crit: ['exp'] } } }, expect: malformed },
  { name: 'b64: false (an unencoded payload)', paths, auth: { bearer: { key: 'api', header: { b64: false, crit: ['b64'] } } }, expect: malformed },
  { name: 'a kid pointing at a file (ignored: one key)', paths, auth: { bearer: { key: 'api', header: { kid: '../../../../etc/passwd' } } }, expect: accepted },
  { name: 'jku and x5u pointing elsewhere (ignored)', paths, auth: { bearer: { key: 'api', header: { jku: 'http://attacker/jwks', x5u: 'http://attacker/x5' } } }, expect: accepted },

  // The key
  { name: 'signed with a key kas never had', paths, auth: { bearer: { key: 'stranger' } }, expect: refused(/signature does not verify/) },
  { name: 'signed with an empty key', paths, auth: { bearer: { key: 'empty' } }, expect: refused(/signature does not verify/) },
  { name: "signed with the kas-to-kas secret (API claims)", paths, auth: { bearer: { key: 'private', claims: { aud: 'kas', agents: ['good'], agent: null } } }, expect: refused(/signature does not verify/) },
  { name: 'a kas-to-kas token on the API port', paths, auth: { bearer: { key: 'private' } }, expect: refused(/signature does not verify|aud/) },

  // The claims
  { name: 'audience kas-private', paths, auth: { bearer: { key: 'api', claims: { aud: 'kas-private' } } }, expect: refused(/aud claim/) },
  { name: 'audience KAS', paths, auth: { bearer: { key: 'api', claims: { aud: 'KAS' } } }, expect: refused(/aud claim/) },
  { name: 'no audience', paths, auth: { bearer: { key: 'api', claims: { aud: null } } }, expect: refused(/aud claim/) },
  { name: 'audience a list without kas', paths, auth: { bearer: { key: 'api', claims: { aud: ['rails', 'grafana'] } } }, expect: refused(/aud claim/) },
  { name: 'audience a list with kas (JWT allows a list)', paths, auth: { bearer: { key: 'api', claims: { aud: ['rails', 'kas'] } } }, expect: accepted },
  { name: 'expired a minute ago', paths, auth: { bearer: { key: 'api', claims: { exp: -60 } } }, expect: refused(/expired/) },
  { name: 'expired years ago', paths, auth: { bearer: { key: 'api', claims: { exp: -10 * 365 * 86400 } } }, expect: refused(/expired/) },
  { name: 'no exp', paths, auth: { bearer: { key: 'api', claims: { exp: null } } }, expect: refused(/exp claim/) },
  { name: 'exp as a string', paths, auth: { bearer: { key: 'api', claims: { exp: '9999999999' } } }, expect: refused(/exp claim/) },
  { name: 'exp in the far future (kas sets no maximum)', paths, auth: { bearer: { key: 'api', claims: { exp: 50 * 365 * 86400 } } }, expect: accepted },
  { name: 'not valid before an hour from now', paths, auth: { bearer: { key: 'api', claims: { nbf: 3600 } } }, expect: refused(/nbf claim/) },
  // iat is informational (RFC 7519): exp and nbf bound a token's life, and kas checks those.
  { name: 'issued an hour from now', paths, auth: { bearer: { key: 'api', claims: { iat: 3600 } } }, expect: accepted },
  { name: 'no sub', paths, auth: { bearer: { key: 'api', claims: { sub: null } } }, expect: refused(/sub claim/) },
  { name: 'an empty sub', paths, auth: { bearer: { key: 'api', claims: { sub: '' } } }, expect: refused(/"sub" and "agents"/) },
  { name: 'a sub of 257 characters', paths, auth: { bearer: { key: 'api', claims: { sub: 's'.repeat(257) } } }, expect: refused(/"sub" and "agents"/) },
  { name: 'a sub that is a number', paths, auth: { bearer: { key: 'api', claims: { sub: 42 } } }, expect: refused(/sub/) },
  { name: 'no agents claim', paths, auth: { bearer: { key: 'api', claims: { agents: null } } }, expect: refused(/"sub" and "agents"/) },
  { name: 'agents as a string', paths, auth: { bearer: { key: 'api', claims: { agents: 'good' } } }, expect: refused(/"sub" and "agents"/) },
  { name: 'agents holding a number', paths, auth: { bearer: { key: 'api', claims: { agents: [42] } } }, expect: refused(/"sub" and "agents"/) },
  { name: 'agents holding an invalid id', paths, auth: { bearer: { key: 'api', claims: { agents: ['good', 'bad id!'] } } }, expect: refused(/"sub" and "agents"/) },
  { name: 'agents: another agent only', paths, auth: { bearer: { key: 'api', claims: { agents: ['other'] } } }, expect: outOfScope },
  { name: 'agents: none', paths, auth: { bearer: { key: 'api', claims: { agents: [] } } }, expect: outOfScope },
  { name: 'agents: GOOD (ids are case-sensitive)', paths, auth: { bearer: { key: 'api', claims: { agents: ['GOOD'] } } }, expect: outOfScope },
  { name: 'agents: good with a trailing space', paths, auth: { bearer: { key: 'api', claims: { agents: ['good '] } } }, expect: refused(/"sub" and "agents"/) },
  { name: 'agents: *', paths, auth: { bearer: { key: 'api', claims: { agents: ['*'] } } }, expect: accepted },
  { name: 'agents: a pattern (no globbing)', paths, auth: { bearer: { key: 'api', claims: { agents: ['go*'] } } }, expect: refused(/"sub" and "agents"/) },

  // Size
  { name: 'a valid token of 12 KB (a big claim)', paths, auth: { bearer: { key: 'api', claims: { pad: 'p'.repeat(9_000) } } }, expect: accepted },
  {
    name: 'a valid token of 20 KB, past KAS_MAX_HEADER_SIZE',
    paths,
    auth: { bearer: { key: 'api', claims: { pad: 'p'.repeat(15_000) } } },
    expect: { status: 431, body: 'language', message: /KAS_MAX_HEADER_SIZE/, closes: true },
  },
  {
    name: 'an agents claim of 3,000 ids, past KAS_MAX_HEADER_SIZE',
    paths,
    auth: { bearer: { key: 'api', claims: { agents: Array.from({ length: 3_000 }, (_, i) => `agent-${i}`) } } },
    expect: { status: 431, body: 'language', message: /KAS_MAX_HEADER_SIZE/ },
  },

  // The text
  { name: 'the signature cut short', paths, auth: { bearer: { key: 'api', mangle: 'truncate-signature' } }, expect: refused(/signature does not verify|malformed/) },
  { name: 'one signature character changed', paths, auth: { bearer: { key: 'api', mangle: 'flip-signature' } }, expect: refused(/signature does not verify/) },
  { name: "another token's signature", paths, auth: { bearer: { key: 'api', mangle: 'signature-of-another' } }, expect: refused(/signature does not verify/) },
  { name: 'no signature segment', paths, auth: { bearer: { key: 'api', mangle: 'no-signature' } }, expect: refused(/signature|malformed/) },
  { name: 'header and payload only', paths, auth: { bearer: { key: 'api', mangle: 'header-and-payload-only' } }, expect: malformed },
  { name: 'five segments (a JWE shape)', paths, auth: { bearer: { key: 'api', mangle: 'five-segments' } }, expect: malformed },
  { name: 'a trailing dot', paths, auth: { bearer: { key: 'api', mangle: 'trailing-dot' } }, expect: malformed },
  { name: 'base64 padding in the header', paths, auth: { bearer: { key: 'api', mangle: 'padded-base64' } }, expect: malformed },
  { name: 'standard base64 instead of base64url', paths, auth: { bearer: { key: 'api', mangle: 'standard-base64' } }, expect: malformed },
  { name: 'the first half of a valid token', paths, auth: { bearer: { key: 'api', mangle: 'truncate-to-half' } }, expect: malformed },
  { name: 'a valid token in upper case', paths, auth: { bearer: { key: 'api', mangle: 'uppercase' } }, expect: malformed },
  { name: 'a space inside the token', paths, auth: { bearer: { key: 'api', mangle: 'space-inside' } }, expect: refused(/no API token|malformed/) },
  { name: 'not a JWT at all', paths, auth: { bearer: { literal: 'hunter2' } }, expect: malformed },
  { name: 'an agent token (kasat_…) as an API token', paths, auth: { bearer: { literal: `kasat_${'A'.repeat(43)}` } }, expect: malformed },
  { name: 'JSON instead of a JWT', paths, auth: { bearer: { literal: '{"sub":"admin","agents":["*"]}' } }, expect: malformed },

  // Basic auth (promtool, Grafana): the token is the password
  { name: 'Basic with the token as the password', paths, auth: { basic: 'valid', user: 'promtool' }, expect: accepted },
  { name: 'Basic with an empty user name', paths, auth: { basic: 'valid', user: '' }, expect: accepted },
  { name: 'Basic with a non-ASCII user name', paths, auth: { basic: 'valid', user: 'grafanä' }, expect: accepted },
  { name: 'Basic with a forged token', paths, auth: { basic: { key: 'stranger' } }, expect: refused(/signature does not verify/) },
  { name: 'Basic with alg none', paths, auth: { basic: { key: 'api', alg: 'none' } }, expect: refused(/HS256|malformed/) },
  { name: 'Basic with the token as the user name', paths, auth: { value: `Basic ${Buffer.from('TOKEN:x').toString('base64')}` }, expect: malformed },
  { name: 'Basic without a colon', paths, auth: { value: 'Basic aGVsbG8=' }, expect: refused(/no API token/) },
  { name: 'Basic with text that is not base64', paths, auth: { value: 'Basic !!!***' }, expect: refused(/no API token/) },
  { name: 'Basic with nothing after it', paths, auth: { value: 'Basic' }, expect: refused(/no API token/) },
];

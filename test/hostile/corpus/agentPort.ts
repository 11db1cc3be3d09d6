// The agent port, the one port exposed to clusters: what is not an agent is turned away at once
// and clearly. Plain HTTP gets a 400 that says what the port is (never silence), a head too slow
// or too large is cut, a handshake that is not an agent's gets a connect_error (`unauthorized`,
// never telling whether an agent id exists), and a socket.io connection that speaks garbage is
// closed.
import { PROTOCOL_VERSION } from '../../../protocol/messages.ts';
import type { HandshakeCase, HttpCase } from './case.ts';

const plainHttp = { status: 400, body: 'json', message: /this is kas's agent port: agentk connects here over a WebSocket/, closes: true } as const;
const websocket = [
  ['Connection', 'Upgrade'],
  ['Upgrade', 'websocket'],
  ['Sec-WebSocket-Version', '13'],
  ['Sec-WebSocket-Key', 'dGhlIHNhbXBsZSBub25jZQ=='],
] as const;
const handshake = (extra: Record<string, unknown> = {}) => ({ token: '{agentToken}', replica: 'probe-0', version: 'probe', capabilities: ['prometheus'], protocol: PROTOCOL_VERSION, ...extra });
const unauthorized = { connectError: /^unauthorized$/ } as const;

export const agentPortHttpCases: HttpCase[] = [
  { name: 'plain HTTP', port: 'agent', paths: ['/', '/api/v1/agents', '/metrics', '/favicon.ico', '/socket.io'], expect: plainHttp },
  { name: 'plain HTTP with an API token', port: 'agent', path: '/api/v1/agents/good/prometheus/api/v1/query?query=up', auth: { bearer: 'api-token' }, expect: plainHttp },
  { name: 'HEAD', port: 'agent', method: 'HEAD', path: '/', expect: { status: 400, body: 'empty' } },
  { name: 'a POST with a body', port: 'agent', method: 'POST', path: '/', body: '{"hello":"kas"}', expect: plainHttp },
  { name: 'CONNECT', port: 'agent', method: 'CONNECT', path: '127.0.0.1:8153', headers: [['Host', '127.0.0.1:8153']], expect: { ...plainHttp, closes: false } },
  { name: 'a WebSocket upgrade to another path', port: 'agent', paths: ['/', '/ws', '/api/v1/agents'], headers: websocket, expect: plainHttp },
  { name: 'socket.io over HTTP long-polling (WebSocket only here)', port: 'agent', paths: ['/socket.io/?EIO=4&transport=polling', '/socket.io/?EIO=3&transport=polling'], expect: { status: 400, body: 'json', message: /Transport unknown/ } },
  { name: 'the socket.io path without a transport', port: 'agent', path: '/socket.io/', expect: { status: 400, body: 'json', message: /Transport unknown/ } },
  { name: 'a WebSocket upgrade with a bad version', port: 'agent', path: '/socket.io/?EIO=4&transport=websocket', headers: [['Connection', 'Upgrade'], ['Upgrade', 'websocket'], ['Sec-WebSocket-Version', '12'], ['Sec-WebSocket-Key', 'dGhlIHNhbXBsZSBub25jZQ==']], expect: { status: 400 } },
  { name: 'a WebSocket upgrade without its key', port: 'agent', path: '/socket.io/?EIO=4&transport=websocket', headers: [['Connection', 'Upgrade'], ['Upgrade', 'websocket'], ['Sec-WebSocket-Version', '13']], expect: { status: 400 } },
  { name: 'an engine.io protocol kas does not speak', port: 'agent', path: '/socket.io/?EIO=2&transport=websocket', headers: websocket, expect: { status: 400, message: /kas speaks engine.io protocol 4/, closes: true } },
  { name: 'a head past 16 KiB', port: 'agent', path: '/', headers: [['X-Pad', 'p'.repeat(17_000)]], expect: { status: 431 } },
  { name: 'a TLS ClientHello on the plain port', port: 'agent', raw: ['\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03'], expect: { status: 400 } },
  { name: 'a head that stops half way (cut after KAS_HEADER_TIMEOUT)', port: 'agent', slow: true, raw: ['GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n'], expect: { status: 408, withinMs: 3_500 } },
  { name: 'a connection that sends nothing (cut after KAS_HEADER_TIMEOUT)', port: 'agent', slow: true, raw: [], expect: { status: 408, withinMs: 3_500 } },
];

export const agentPortHandshakeCases: HandshakeCase[] = [
  { name: 'a registered agent with its token (the control)', auth: handshake(), expect: { connected: true } },
  { name: 'no auth at all', expect: unauthorized },
  { name: 'an empty auth', auth: {}, expect: unauthorized },
  { name: 'a wrong token', auth: handshake({ token: `kasat_${'A'.repeat(43)}` }), expect: unauthorized },
  { name: 'a token of another shape', auth: handshake({ token: 'hunter2' }), expect: unauthorized },
  { name: 'a token of 300 characters', auth: handshake({ token: `kasat_${'B'.repeat(294)}` }), expect: unauthorized },
  { name: 'a token that is not a string', auth: handshake({ token: ['{agentToken}'] }), expect: unauthorized },
  { name: 'an API token (a JWT) as the agent token', auth: handshake({ token: '{apiToken}' }), expect: unauthorized },
  { name: 'the token with a trailing newline', auth: handshake({ token: '{agentToken}\n' }), expect: unauthorized },
  { name: 'the valid token with no replica name', auth: handshake({ replica: undefined }), expect: unauthorized },
  { name: 'the valid token with a replica name of 254 characters', auth: handshake({ replica: 'r'.repeat(254) }), expect: unauthorized },
  { name: 'the valid token with a capability kas does not know', auth: handshake({ capabilities: ['prometheus', 'shell'] }), expect: unauthorized },
  { name: 'the valid token claiming another agent id (the id comes from the token)', auth: handshake({ agentId: 'good', agent: 'good', id: 'good' }), expect: { connected: true } },
  { name: 'the valid token with a protocol kas does not speak', auth: handshake({ protocol: PROTOCOL_VERSION + 1 }), expect: { connectError: /unsupported tunnel protocol 2; kas speaks 1/ } },
  { name: 'the valid token on another namespace', auth: handshake(), namespace: '/admin', expect: { connectError: /Invalid namespace/ } },
  { name: 'garbage instead of a socket.io packet', frames: ['this is not socket.io'], expect: { closedWithin: 2_000 } },
  { name: 'a CONNECT packet with broken JSON', frames: ['40{"token":'], expect: { closedWithin: 2_000 } },
  { name: 'an event before any CONNECT', frames: ['42["tunnel",{"type":"end","id":1}]'], expect: { closedWithin: 2_000 } },
  { name: 'a binary frame of garbage', frames: [new Uint8Array([0xff, 0x00, 0x13, 0x37])], expect: { closedWithin: 2_000 } },
  { name: 'a text frame past the 1 MiB frame limit', frames: [`4${'x'.repeat(1024 * 1024 + 16)}`], expect: { closedWithin: 2_000 } },
  { name: 'an engine.io packet type that does not exist', frames: ['9hello'], expect: { closedWithin: 2_000 } },
];

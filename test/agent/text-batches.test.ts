// agentk sends small packed batches as base64 text (one WebSocket frame instead of two) only to a
// kas whose FEATURES_EVENT said it reads them; to an older kas, which never says so, it sends
// binary as before. A real agentk against a hand-made kas node that records what arrives.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Server, type Socket } from 'socket.io';
import { FEATURES_EVENT, KAS_FEATURES, readAgentMessages, TUNNEL_EVENT } from '../../protocol/messages.ts';
import { freePort } from '../support/ports.ts';
import { Proc } from '../support/procs.ts';
import { type FakeUpstream, startFakeUpstream } from '../support/upstream.ts';

const AGENTK = fileURLToPath(new URL('../../bin/agentk.js', import.meta.url));
let dir: string;
let upstream: FakeUpstream;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kas-text-batches-'));
  upstream = await startFakeUpstream();
});
after(async () => {
  await upstream?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** What a real agentk sends for one small answer to a kas node that does (or does not) announce text batches. */
async function answerFrom(announce: boolean): Promise<{ raw: unknown[]; body: string }> {
  const http = createServer();
  const io = new Server(http, { transports: ['websocket'] });
  http.listen(0, '127.0.0.1');
  await once(http, 'listening');
  const { port } = http.address() as AddressInfo;
  const raw: unknown[] = [];
  const answered = new Promise<string>((resolve, reject) => {
    io.on('connection', (socket: Socket) => {
      if (announce) socket.emit(FEATURES_EVENT, KAS_FEATURES);
      let body = '';
      socket.on(TUNNEL_EVENT, (event: unknown) => {
        raw.push(event);
        const { messages, refused, batchError } = readAgentMessages(event);
        if (refused.length || batchError) reject(new Error(`refused ${JSON.stringify(event)}`));
        for (const m of messages) {
          if (m.type === 'data') body += Buffer.from(m.chunk).toString();
          if (m.type === 'end') resolve(body);
        }
      });
      // After the agent has had the features event (it comes first on the connection).
      setTimeout(() => {
        socket.emit(TUNNEL_EVENT, [
          { type: 'request', id: 1, upstream: 'prometheus', method: 'GET', path: '/api/v1/query', query: 'query=up', headers: {}, timeoutMs: 10_000, credit: 256 * 1024 },
        ]);
      }, 50);
    });
  });
  const tokenFile = join(dir, 'token');
  const config = join(dir, 'agent.yaml');
  await writeFile(tokenFile, 'token\n');
  await writeFile(config, `prometheus:\n  url: ${upstream.url}\n`);
  const agent = Proc.start('agentk', process.execPath, [AGENTK, '--kas-url', `ws://127.0.0.1:${port}`, '--token-file', tokenFile, '--config', config], {
    env: { ...process.env, AGENTK_OBSERVABILITY_LISTEN: `127.0.0.1:${await freePort()}`, OTEL_SDK_DISABLED: 'true' },
  });
  try {
    const body = await Promise.race([
      answered,
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no answer in 20 s\n${agent.output()}`)), 20_000)),
    ]);
    return { raw, body };
  } finally {
    await agent.stop();
    await io.close();
  }
}

const bytesOf = (event: unknown) => (event as { bytes?: unknown }).bytes;

test('to a kas that announces text batches, a small answer leaves agentk as one text event', async () => {
  const { raw, body } = await answerFrom(true);
  assert.equal(JSON.parse(body).status, 'success');
  assert.equal(raw.length, 1, 'head, data and end in one event');
  assert.equal(typeof bytesOf(raw[0]), 'string', 'its chunks as base64 text: no binary attachment');
});

test('to a kas that does not (an older node), agentk sends binary as before', async () => {
  const { raw, body } = await answerFrom(false);
  assert.equal(JSON.parse(body).status, 'success');
  assert.equal(raw.length, 1);
  assert.ok(bytesOf(raw[0]) instanceof Uint8Array, 'the packed chunks as a binary attachment');
});

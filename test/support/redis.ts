import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.ts';
import { Proc } from './procs.ts';
import { requireTool } from './tools.ts';

export interface RedisServer {
  url: string;
  port: number;
  proc: Proc;
  /** Stops it abruptly (SIGKILL) and starts it again on the same port, empty, after `downMs`. */
  restart(downMs: number): Promise<void>;
  stop(): Promise<void>;
}

/** A private, non-persistent redis-server on a free loopback port. */
export async function startRedis(): Promise<RedisServer> {
  const binary = await requireTool('redis-server');
  const dir = await mkdtemp(join(tmpdir(), 'kas-redis-'));
  try {
    // Another process can take the free port before redis binds it; a fresh port fixes that.
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir];
      let proc = Proc.start('redis-server', binary, args);
      try {
        await proc.waitFor(() => ping(port), { timeoutMs: 10_000, what: `redis-server on port ${port} to answer PING` });
      } catch (err) {
        await proc.kill();
        if (attempt < 3 && /Address already in use/i.test(proc.output())) continue;
        throw err;
      }
      return {
        url: `redis://127.0.0.1:${port}`,
        port,
        get proc() {
          return proc;
        },
        async restart(downMs: number) {
          await proc.kill();
          await new Promise((r) => setTimeout(r, downMs));
          proc = Proc.start('redis-server', binary, args);
          await proc.waitFor(() => ping(port), { timeoutMs: 10_000, what: `redis-server on port ${port} to answer PING again` });
        },
        async stop() {
          await proc.stop('SIGTERM', 5_000);
          await rm(dir, { recursive: true, force: true });
        },
      };
    }
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/** An inline-protocol PING over a raw socket, so readiness does not depend on a client library. */
function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let reply = '';
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1_000, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.setEncoding('utf8').on('data', (chunk: string) => {
      reply += chunk;
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'));
    });
  });
}

import type { Logger } from 'pino';
import { createClient } from '@redis/client';

function makeClient(url: string) {
  return createClient({ url, socket: { reconnectStrategy: (retries) => Math.min(100 * 2 ** retries, 5000) } });
}

export type RedisClient = ReturnType<typeof makeClient>;

/** Two clients: socket.io's adapter needs one of them for subscriptions only. */
export async function connectRedis(url: string, log: Logger): Promise<{ pub: RedisClient; sub: RedisClient }> {
  const pub = makeClient(url);
  const sub = pub.duplicate();
  for (const [name, client] of [['pub', pub], ['sub', sub]] as const) {
    client.on('error', (error: Error) => log.warn({ client: name, err: error.message }, 'Redis connection problem'));
  }
  log.info({ redis: url.replace(/\/\/[^@]*@/, '//***@') }, 'connecting to Redis');
  await Promise.all([pub.connect(), sub.connect()]);
  return { pub, sub };
}

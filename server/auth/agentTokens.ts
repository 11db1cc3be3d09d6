// The agent token store: agent ids with the SHA-256 of their token. The token itself is printed
// once by `kas agent register` and never stored. Running nodes re-read the file when it changes,
// so `kas agent revoke` (or an operator editing a mounted file) takes effect on every node.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { type FSWatcher, watch } from 'node:fs';
import { mkdir, open, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { AGENT_ID_PATTERN } from '../../protocol/messages.ts';

export const AGENT_TOKEN_PREFIX = 'kasat_';
const AGENT_TOKEN_PATTERN = /^kasat_[A-Za-z0-9_-]{43}$/;

const StoreFileSchema = z.object({
  agents: z.record(
    z.string().regex(AGENT_ID_PATTERN),
    z.object({ tokenSha256: z.string().regex(/^[0-9a-f]{64}$/), registeredAt: z.string() }),
  ),
});
type StoreFile = z.infer<typeof StoreFileSchema>;

export class AgentTokenError extends Error {
  override name = 'AgentTokenError';
}

function sha256(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

async function readStore(file: string): Promise<StoreFile> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { agents: {} };
    throw error;
  }
  const parsed = StoreFileSchema.safeParse(JSON.parse(text));
  if (!parsed.success) throw new AgentTokenError(`${file} is not a kas agent token store: ${parsed.error.message}`);
  return parsed.data;
}

async function writeStore(file: string, store: StoreFile): Promise<void> {
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const temp = `${file}.${process.pid}.tmp`;
  await writeFile(temp, `${JSON.stringify(store, null, 2)}\n`, { mode: 0o600 });
  await rename(temp, file);
}

/** A lock older than this was left behind by a command that was killed while holding it. */
const STALE_LOCK_MS = 30_000;
const LOCK_WAIT_MS = 10_000;

/**
 * Runs a read-modify-write of the store while holding `<file>.lock`, so `kas agent register`
 * commands run at the same time (a provisioning script, two operators) do not lose each
 * other's agents: the rename in writeStore is atomic, but the read before it is not.
 */
async function withStoreLock<T>(file: string, update: () => Promise<T>): Promise<T> {
  const lock = `${file}.lock`;
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      await (await open(lock, 'wx', 0o600)).close();
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const age = await stat(lock).then((s) => Date.now() - s.mtimeMs, () => 0);
    if (age > STALE_LOCK_MS) {
      await unlink(lock).catch(() => undefined);
      continue;
    }
    if (Date.now() > deadline) {
      throw new AgentTokenError(`${lock} is held by another kas command; if none is running, remove the file`);
    }
    await sleep(10 + Math.random() * 40);
  }
  try {
    return await update();
  } finally {
    await unlink(lock).catch(() => undefined);
  }
}

export function validateAgentId(id: string): void {
  if (!AGENT_ID_PATTERN.test(id)) {
    throw new AgentTokenError(`agent id "${id}" is invalid: use 1-63 characters of A-Za-z0-9._-`);
  }
}

/** Registers an agent and returns its token: the only time the token exists outside the agent. */
export async function registerAgent(file: string, id: string): Promise<string> {
  validateAgentId(id);
  return withStoreLock(file, async () => {
    const store = await readStore(file);
    if (store.agents[id]) {
      throw new AgentTokenError(`agent ${id} is already registered; revoke it first to issue a new token`);
    }
    const token = AGENT_TOKEN_PREFIX + randomBytes(32).toString('base64url');
    store.agents[id] = { tokenSha256: sha256(token).toString('hex'), registeredAt: new Date().toISOString() };
    await writeStore(file, store);
    return token;
  });
}

export async function revokeAgent(file: string, id: string): Promise<void> {
  validateAgentId(id);
  await withStoreLock(file, async () => {
    const store = await readStore(file);
    if (!store.agents[id]) throw new AgentTokenError(`agent ${id} is not registered in ${file}`);
    delete store.agents[id];
    await writeStore(file, store);
  });
}

interface Entry {
  id: string;
  hash: Buffer;
}

/**
 * A live, read-only view of the store for a running node. Emits `revoked` with the ids whose
 * tokens disappeared or changed, so the node can disconnect their replicas.
 */
export class AgentTokenStore extends EventEmitter<{ revoked: [ids: string[]]; error: [error: Error] }> {
  #file: string;
  #byHash = new Map<string, Entry>();
  #byId = new Map<string, Entry>();
  #watcher: FSWatcher | undefined;
  #reloadTimer: NodeJS.Timeout | undefined;
  #pollTimer: NodeJS.Timeout | undefined;

  private constructor(file: string) {
    super();
    this.#file = file;
  }

  static async open(file: string): Promise<AgentTokenStore> {
    const store = new AgentTokenStore(file);
    await store.reload();
    await mkdir(dirname(file), { recursive: true, mode: 0o700 });
    // Watch the directory, not the file: writers replace the file by rename.
    store.#watcher = watch(dirname(file), (_event, name) => {
      if (name === null || name === basename(file)) store.#scheduleReload();
    });
    store.#watcher.on('error', (error) => store.emit('error', error));
    // Mounted volumes (ConfigMaps, NFS) do not always deliver watch events: poll as a backstop.
    store.#pollTimer = setInterval(() => store.#scheduleReload(), 5000).unref();
    return store;
  }

  #scheduleReload(): void {
    clearTimeout(this.#reloadTimer);
    this.#reloadTimer = setTimeout(() => {
      this.reload().catch((error: Error) => this.emit('error', error));
    }, 50);
  }

  async reload(): Promise<void> {
    const store = await readStore(this.#file);
    const byHash = new Map<string, Entry>();
    const byId = new Map<string, Entry>();
    for (const [id, { tokenSha256 }] of Object.entries(store.agents)) {
      const entry = { id, hash: Buffer.from(tokenSha256, 'hex') };
      byHash.set(tokenSha256, entry);
      byId.set(id, entry);
    }
    const revoked = [...this.#byId.values()]
      .filter((old) => !byId.get(old.id)?.hash.equals(old.hash))
      .map((old) => old.id);
    this.#byHash = byHash;
    this.#byId = byId;
    if (revoked.length > 0) this.emit('revoked', revoked);
  }

  /** The agent id a token belongs to, or undefined. Never says which part was wrong. */
  agentIdForToken(token: string): string | undefined {
    if (!AGENT_TOKEN_PATTERN.test(token)) return undefined;
    const hash = sha256(token);
    const entry = this.#byHash.get(hash.toString('hex'));
    return entry && timingSafeEqual(entry.hash, hash) ? entry.id : undefined;
  }

  isRegistered(id: string): boolean {
    return this.#byId.has(id);
  }

  /** How many agents are registered. */
  get size(): number {
    return this.#byId.size;
  }

  close(): void {
    this.#watcher?.close();
    clearTimeout(this.#reloadTimer);
    clearInterval(this.#pollTimer);
  }
}

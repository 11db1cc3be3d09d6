// The API and agents' ports with TLS whose certificates rotate without a restart: the files are
// re-read when they change (a watch on their directories, which also sees Kubernetes Secret
// volumes swap their `..data` link, and a poll every 5 s for mounts that send no events) and on
// SIGHUP, and a new pair is put in place with setSecureContext: new connections get it,
// established ones go on. A pair that does not load (a key that does not match while a
// rotation is half written) is logged and the old one keeps serving. SIGHUP also re-reads the
// agent token store (which otherwise follows its file on its own).
import { type FSWatcher, readFileSync, watch } from 'node:fs';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import { basename, dirname } from 'node:path';
import type { Logger } from 'pino';
import type { AgentTokenStore } from '../auth/agentTokens.ts';
import type { TlsFiles } from '../config.ts';

const POLL_MS = 5_000;
const SETTLE_MS = 100;

interface Pair {
  cert: Buffer;
  key: Buffer;
}

/** The TLS files each HTTPS server made here was started with. */
const filesOf = new WeakMap<https.Server, TlsFiles>();
const loaded = new WeakMap<https.Server, Pair>();

/** HTTP, or HTTPS from these files; reloadTlsOnChange keeps the latter's certificate current. */
export function createServer(tls: TlsFiles | undefined, handler?: http.RequestListener, options: http.ServerOptions = {}): http.Server | https.Server {
  if (!tls) return handler ? http.createServer(options, handler) : http.createServer(options);
  const pair = { cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) };
  const server = handler ? https.createServer({ ...options, ...pair }, handler) : https.createServer({ ...options, ...pair });
  filesOf.set(server, tls);
  loaded.set(server, pair);
  return server;
}

type Outcome = 'changed' | 'unchanged' | 'failed';

async function reloadServer(server: https.Server, files: TlsFiles, name: string, log: Logger): Promise<Outcome> {
  let pair: Pair;
  try {
    const [cert, key] = await Promise.all([readFile(files.certFile), readFile(files.keyFile)]);
    pair = { cert, key };
  } catch (error) {
    log.error({ port: name, err: (error as Error).message }, 'could not read the TLS files; the current certificate stays');
    return 'failed';
  }
  const current = loaded.get(server);
  if (current && current.cert.equals(pair.cert) && current.key.equals(pair.key)) return 'unchanged';
  try {
    server.setSecureContext(pair);
  } catch (error) {
    log.error(
      { port: name, cert_file: files.certFile, key_file: files.keyFile, err: (error as Error).message },
      'the new TLS files do not load (is the rotation half written?); the current certificate stays',
    );
    return 'failed';
  }
  loaded.set(server, pair);
  log.info({ port: name, cert_file: files.certFile }, 'TLS certificate reloaded');
  return 'changed';
}

export interface ReloadOptions {
  /** The servers by the name logs use (`api`, `agent`); plain HTTP ones are skipped. */
  servers: Record<string, http.Server | https.Server>;
  tokens: AgentTokenStore;
  log: Logger;
}

/** Starts following the TLS files and SIGHUP; returns what stops it. */
export function reloadTlsOnChange({ servers, tokens, log }: ReloadOptions): () => void {
  const watched = Object.entries(servers).flatMap(([name, server]) => {
    const files = server instanceof https.Server ? filesOf.get(server) : undefined;
    return files ? [{ name, server: server as https.Server, files }] : [];
  });
  const reloadAll = () => Promise.all(watched.map((w) => reloadServer(w.server, w.files, w.name, log)));

  let timer: NodeJS.Timeout | undefined;
  const soon = () => {
    clearTimeout(timer);
    timer = setTimeout(() => void reloadAll(), SETTLE_MS);
  };
  const watchers: FSWatcher[] = [];
  for (const dir of new Set(watched.flatMap((w) => [dirname(w.files.certFile), dirname(w.files.keyFile)]))) {
    const names = new Set(watched.flatMap((w) => [w.files.certFile, w.files.keyFile]).filter((f) => dirname(f) === dir).map((f) => basename(f)));
    try {
      const watcher = watch(dir, (_event, name) => {
        if (name === null || names.has(name) || name.startsWith('..')) soon();
      });
      watcher.on('error', (error) => log.warn({ dir, err: error.message }, 'cannot watch the TLS files; polling them'));
      watchers.push(watcher);
    } catch (error) {
      log.warn({ dir, err: (error as Error).message }, 'cannot watch the TLS files; polling them');
    }
  }
  const poll = watched.length > 0 ? setInterval(() => void reloadAll(), POLL_MS).unref() : undefined;

  const onHangup = () => {
    void Promise.all([reloadAll(), tokens.reload().then(() => 'reloaded', (error: Error) => `failed: ${error.message}`)]).then(([tls, store]) => {
      const outcome = Object.fromEntries(watched.map((w, i) => [`${w.name}_tls`, tls[i]]));
      log.info({ ...outcome, agent_tokens: store, agents: tokens.size }, 'SIGHUP: re-read the agent token store and the TLS files');
    });
  };
  process.on('SIGHUP', onHangup);
  return () => {
    process.off('SIGHUP', onHangup);
    clearTimeout(timer);
    clearInterval(poll);
    for (const watcher of watchers) watcher.close();
  };
}

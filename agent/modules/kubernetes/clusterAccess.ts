// How agentk reaches the API server of a kubeconfig context, with the meaning kubectl gives every
// field: an `http://` server gets no TLS and no credentials at all (client-go applies a user's
// credentials only over https, so a `kubectl proxy` config with no user works, and so does one
// with a user); an `https://` server is verified with the cluster's CA whether or not there is a
// user, `insecure-skip-tls-verify` and `tls-server-name` apply, and the user's client
// certificate, token, token file, basic auth or plugin authenticate.
//
// Certificates, keys and token files are read once and then re-read only when the file changes
// (checked at most once a second), so rotation takes effect without work per request; the
// connection pool is replaced only when the TLS material really changed.
import { stat, readFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import type { Cluster, KubeConfig, User } from '@kubernetes/client-node';
import type { ClusterConfig } from './kubeconfig.ts';

const RECHECK_MS = 1000;

/** A kubeconfig value given inline (base64) or as a file; the same Buffer while the file is unchanged. */
class Material {
  readonly #file: string | undefined;
  #value: Buffer | undefined;
  #stamp = '';
  #checkedAt = 0;
  #checking: Promise<Buffer> | undefined;

  private constructor(file: string | undefined, value: Buffer | undefined) {
    this.#file = file;
    this.#value = value;
  }

  static of(file: string | undefined, data: string | undefined): Material | undefined {
    if (file) return new Material(file, undefined);
    if (data) return new Material(undefined, Buffer.from(data, 'base64'));
    return undefined;
  }

  static ofFile(file: string): Material {
    return new Material(file, undefined);
  }

  value(): Buffer | Promise<Buffer> {
    if (this.#file === undefined) return this.#value!;
    if (this.#value !== undefined && Date.now() - this.#checkedAt < RECHECK_MS) return this.#value;
    this.#checking ??= this.#check(this.#file).finally(() => (this.#checking = undefined));
    return this.#checking;
  }

  async #check(file: string): Promise<Buffer> {
    const info = await stat(file);
    const stamp = `${info.ino}:${info.size}:${info.mtimeMs}`;
    if (this.#value === undefined || stamp !== this.#stamp) {
      this.#value = await readFile(file);
      this.#stamp = stamp;
    }
    this.#checkedAt = Date.now();
    return this.#value;
  }
}

/** One keep-alive pool per set of TLS material; identical material (same Buffers) keeps it. */
class TlsPool {
  readonly #ca: Material | undefined;
  readonly #cert: Material | undefined;
  readonly #key: Material | undefined;
  readonly #rejectUnauthorized: boolean;
  readonly #servername: string | undefined;
  #agent: https.Agent | undefined;
  #made: (Buffer | undefined)[] = [];

  constructor(cluster: Cluster, user: User | null) {
    this.#ca = Material.of(cluster.caFile, cluster.caData);
    this.#cert = user ? Material.of(user.certFile, user.certData) : undefined;
    this.#key = user ? Material.of(user.keyFile, user.keyData) : undefined;
    this.#rejectUnauthorized = !cluster.skipTLSVerify;
    this.#servername = cluster.tlsServerName;
  }

  async agent(): Promise<https.Agent> {
    const material = await Promise.all([this.#ca?.value(), this.#cert?.value(), this.#key?.value()]);
    if (this.#agent && material.every((m, i) => m === this.#made[i])) return this.#agent;
    const [ca, cert, key] = material;
    const old = this.#agent;
    // No cap on connections: each watch or follow holds one for as long as it lives (HTTP/1.1),
    // and a cap would leave every watch beyond it waiting, unanswered, for one to end.
    this.#agent = new https.Agent({ keepAlive: true, ca, cert, key, rejectUnauthorized: this.#rejectUnauthorized, servername: this.#servername });
    this.#made = material;
    // Streams on the old pool go on to their end; its idle connections close now.
    if (old) for (const sockets of Object.values(old.freeSockets)) for (const socket of sockets ?? []) socket.destroy();
    return this.#agent;
  }
}

const plainAgent = new http.Agent({ keepAlive: true }); // uncapped, as above

export interface ClusterRequestOptions {
  agent: http.Agent;
  headers: http.OutgoingHttpHeaders;
  /** user:password for basic auth. */
  auth?: string;
}

export class ClusterAccess {
  /** The API server's base URL (a path prefix such as a proxy's is kept). */
  readonly server: URL;
  readonly #cluster: Cluster;
  readonly #user: User | null;
  /** Only for a credential plugin: the library, loaded on first use. */
  #plugin: Promise<KubeConfig> | undefined;
  readonly #tls: TlsPool | undefined;
  readonly #tokenFile: Material | undefined;
  #tokenBuffer: Buffer | undefined;
  #tokenHeader = '';

  constructor({ cluster, user }: ClusterConfig) {
    this.#cluster = cluster;
    this.server = new URL(cluster.server);
    const secure = this.server.protocol === 'https:';
    if (!secure && this.server.protocol !== 'http:') throw new Error(`cluster server ${cluster.server} is neither http:// nor https://`);
    // Over http kubectl sends no credentials at all: neither do we.
    this.#user = secure ? user : null;
    this.#tls = secure ? new TlsPool(cluster, this.#user) : undefined;
    const tokenFile = this.#user?.authProvider?.name === 'tokenFile' ? (this.#user.authProvider.config?.tokenFile as string | undefined) : undefined;
    this.#tokenFile = tokenFile ? Material.ofFile(tokenFile) : undefined;
  }

  url(path: string, query: string): URL {
    const url = new URL(this.server);
    url.pathname = this.server.pathname.replace(/\/+$/, '') + path;
    url.search = query;
    return url;
  }

  /** The pool and credentials for one request, read per request so that rotations take effect. */
  async requestOptions(): Promise<ClusterRequestOptions> {
    const user = this.#user;
    if (!this.#tls || !user) return { agent: this.#tls ? await this.#tls.agent() : plainAgent, headers: {} };
    const headers: http.OutgoingHttpHeaders = {};
    if (user.impersonateUser) headers['impersonate-user'] = user.impersonateUser;
    if (this.#tokenFile) {
      headers.authorization = await this.#bearerFromFile(this.#tokenFile);
    } else if (user.exec || user.authProvider) {
      // A credential plugin (exec, oidc…): client-node runs it and caches what it returns.
      const options: https.RequestOptions = {};
      await (await this.#pluginConfig()).applyToHTTPSOptions(options);
      Object.assign(headers, options.headers);
    } else if (user.token) {
      headers.authorization = `Bearer ${user.token}`;
    }
    const auth = user.username ? `${user.username}:${user.password ?? ''}` : undefined;
    return { agent: await this.#tls.agent(), headers, ...(auth ? { auth } : {}) };
  }

  /** A KubeConfig of this cluster and user alone, for client-node to run the user's plugin with. */
  #pluginConfig(): Promise<KubeConfig> {
    this.#plugin ??= import('@kubernetes/client-node').then(({ KubeConfig }) => {
      const kc = new KubeConfig();
      const user = this.#user!;
      kc.loadFromOptions({
        clusters: [this.#cluster],
        users: [user],
        contexts: [{ name: 'agentk', cluster: this.#cluster.name, user: user.name }],
        currentContext: 'agentk',
      });
      return kc;
    });
    return this.#plugin;
  }

  async #bearerFromFile(file: Material): Promise<string> {
    const buffer = await file.value();
    if (buffer !== this.#tokenBuffer) {
      this.#tokenBuffer = buffer;
      this.#tokenHeader = `Bearer ${buffer.toString('utf8').trim()}`;
    }
    return this.#tokenHeader;
  }
}

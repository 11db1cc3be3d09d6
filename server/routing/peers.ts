// Small kas-to-kas reads that are not agent requests: a capability asking the node that does a
// piece of work for its state (a live graph's window, say). Over the private port, signed like
// forwarded requests; the answer is read whole, so it must be bounded.
import http from 'node:http';
import https from 'node:https';
import { signPrivateToken } from '../auth/tokens.ts';

const agents = {
  http: new http.Agent({ keepAlive: true }),
  https: new https.Agent({ keepAlive: true }),
};

/** The private path of a capability's peer route. */
export const peerPath = (capability: string, agentId: string, rest: string) => `/private/v1/peer/${capability}/${agentId}${rest}`;

export class PeerError extends Error {
  override name = 'PeerError';
}

export class Peers {
  #secret: Uint8Array;
  #node: string;

  constructor(privateSecret: Uint8Array, node: string) {
    this.#secret = privateSecret;
    this.#node = node;
  }

  /** GETs `rest` (path and query) of a capability's peer route on the node at `nodeUrl`, up to `maxBytes`. */
  async get(nodeUrl: string, capability: string, agentId: string, rest: string, options: { maxBytes: number; timeoutMs: number }): Promise<{ status: number; body: Buffer }> {
    const token = await signPrivateToken(this.#secret, { sub: `kas-node:${this.#node}`, agent: agentId, replica: undefined });
    const url = new URL(peerPath(capability, agentId, rest), nodeUrl);
    const secure = url.protocol === 'https:';
    return new Promise((resolve, reject) => {
      const outgoing = (secure ? https : http).request(url, {
        headers: { authorization: `Bearer ${token}` },
        agent: secure ? agents.https : agents.http,
        signal: AbortSignal.timeout(options.timeoutMs),
      });
      outgoing.on('response', (incoming) => {
        const chunks: Buffer[] = [];
        let size = 0;
        incoming.on('data', (chunk: Buffer) => {
          size += chunk.byteLength;
          if (size > options.maxBytes) return outgoing.destroy(new PeerError(`the answer of ${nodeUrl} exceeds ${options.maxBytes} bytes`));
          chunks.push(chunk);
        });
        incoming.on('end', () => resolve({ status: incoming.statusCode ?? 502, body: Buffer.concat(chunks) }));
        incoming.on('error', (error) => reject(new PeerError(`reading from ${nodeUrl} failed: ${error.message}`)));
      });
      outgoing.on('error', (error) => reject(new PeerError(`asking ${nodeUrl} failed: ${error.message}`)));
      outgoing.end();
    });
  }
}

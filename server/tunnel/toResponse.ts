// Pipes one tunnel stream into an HTTP response with backpressure: credit goes back to the agent
// only once the caller's socket has taken the bytes, so a slow reader slows the agent's upstream
// read instead of growing kas's memory.
import type { Response } from 'express';
import { CHUNK_MAX_BYTES } from '../../protocol/messages.ts';
import type { TunnelStream, TunnelStreamError } from './agentConnection.ts';

/** Response headers that describe one HTTP hop, not the payload: never passed on. */
export const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'set-cookie',
]);

/** Credit is returned in batches so small chunks do not each cost a message. */
const CREDIT_BATCH_BYTES = 4 * CHUNK_MAX_BYTES;

export interface StreamOutcome {
  /** The stream failed before its head: nothing was written, the caller may answer or retry. */
  failedBeforeHead?: TunnelStreamError;
  status?: number;
  bytes: number;
}

export function streamToResponse(
  stream: TunnelStream,
  res: Response,
  extraHeaders: Record<string, string>,
  options: { flushEachChunk: boolean; endSignal?: AbortSignal | undefined },
): Promise<StreamOutcome> {
  return new Promise((resolve) => {
    let bytes = 0;
    let owed = 0;
    let status: number | undefined;
    let waitingForDrain = false;

    const payBack = () => {
      // Streams too: a watch event need not cost a credit message back to the agent. The agent
      // still has three quarters of its window when a batch falls due, so it never waits on this.
      if (owed >= CREDIT_BATCH_BYTES) {
        stream.grantCredit(owed);
        owed = 0;
      }
    };
    const onDrain = () => {
      waitingForDrain = false;
      payBack();
    };
    const onCallerGone = () => {
      if (!stream.done) stream.cancel('caller went away');
      finish();
    };
    // The node is going away: end a started stream cleanly (a watch client then re-watches from
    // its last resourceVersion elsewhere) rather than cutting it.
    const onEndSignal = () => {
      if (status === undefined) return; // checked again when the head arrives
      stream.cancel('kas node is shutting down');
      res.end();
      finish();
    };
    const finish = (failedBeforeHead?: TunnelStreamError) => {
      res.off('drain', onDrain);
      res.off('close', onCallerGone);
      options.endSignal?.removeEventListener('abort', onEndSignal);
      resolve({ failedBeforeHead, status, bytes });
    };

    res.on('close', onCallerGone);
    res.on('drain', onDrain);
    options.endSignal?.addEventListener('abort', onEndSignal);

    stream.on('head', (code, headers) => {
      if (res.headersSent || res.destroyed) {
        // kas already answered (the request deadline passed): drop the late answer.
        stream.cancel('answered already');
        return finish();
      }
      status = code;
      for (const [name, value] of Object.entries(headers)) {
        if (!HOP_BY_HOP.has(name.toLowerCase())) res.setHeader(name, value);
      }
      for (const [name, value] of Object.entries(extraHeaders)) res.setHeader(name, value);
      res.writeHead(code);
      // Watches must reach the caller at once, before the first event.
      if (options.flushEachChunk) res.flushHeaders();
      if (options.endSignal?.aborted) onEndSignal();
    });
    stream.on('data', (chunk) => {
      if (res.writableEnded) return;
      bytes += chunk.byteLength;
      owed += chunk.byteLength;
      if (res.write(chunk)) {
        if (!waitingForDrain) payBack();
      } else {
        waitingForDrain = true;
      }
    });
    stream.on('end', () => {
      res.end();
      finish();
    });
    stream.on('error', (error) => {
      if (status === undefined) return finish(error);
      // The caller already has every byte the Content-Length promised: the answer is complete,
      // and cutting the connection would only break the caller's next request on it.
      const declared = res.getHeader('content-length');
      if (declared !== undefined && Number(declared) === bytes && !res.writableEnded) {
        res.end();
        return finish();
      }
      // Mid-body: the only honest signal left is cutting the response short.
      res.destroy(error);
      finish();
    });
  });
}

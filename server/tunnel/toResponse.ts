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
  options: { flushEachChunk: boolean },
): Promise<StreamOutcome> {
  return new Promise((resolve) => {
    let bytes = 0;
    let owed = 0;
    let status: number | undefined;
    let waitingForDrain = false;

    const payBack = () => {
      if (owed >= CREDIT_BATCH_BYTES || (options.flushEachChunk && owed > 0)) {
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
    const finish = (failedBeforeHead?: TunnelStreamError) => {
      res.off('drain', onDrain);
      res.off('close', onCallerGone);
      resolve({ failedBeforeHead, status, bytes });
    };

    res.on('close', onCallerGone);
    res.on('drain', onDrain);

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
    });
    stream.on('data', (chunk) => {
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
      // Mid-body: the only honest signal left is cutting the response short.
      res.destroy(error);
      finish();
    });
  });
}

// A child process of bench/scale.ts: many agent replicas in one process, speaking agentk's tunnel
// protocol (the handshake, and a fixed answer to each request), so that tens of thousands of
// agent connections can be made on one machine. It reports, when asked, how many are connected
// and when the last of them connected.
import { io, type Socket } from 'socket.io-client';
import { backoffDelay } from '../agent/connection.ts';
import { retryHintMs } from '../protocol/messages.ts';

interface Job {
  kasUrls: string[];
  /** [agent token, replica name] per connection. */
  replicas: [string, string][];
  /** Connections opened per second (a fleet coming up, not all in the same millisecond). */
  perSecond: number;
}

// Loaded: the parent starts its clock once every client process is, so that their start-up on
// the same cores is not counted as kas's time.
const jobArrives = new Promise<Job>((resolve) => process.once('message', (message) => resolve(message as Job)));
process.send!('ready');
const job = await jobArrives;
const sockets: Socket[] = [];
let connected = 0;
let lastConnectedAt = 0;
let refused = 0;
const answer = Buffer.from('{"status":"success","data":{"resultType":"vector","result":[]}}');

function open(index: number): void {
  const [token, replica] = job.replicas[index]!;
  const socket = io(job.kasUrls[index % job.kasUrls.length]!, {
    forceNew: true,
    transports: ['websocket'],
    // Refused connections are retried as agentk retries them: exponential backoff with jitter.
    reconnection: false,
    auth: { token, replica, version: 'bench', capabilities: ['prometheus'], protocol: 1 },
  });
  let up = false;
  socket.on('connect', () => {
    if (!up) connected++;
    up = true;
    lastConnectedAt = Date.now();
  });
  socket.on('disconnect', () => {
    if (up) connected--;
    up = false;
  });
  let attempt = 0;
  socket.on('connect', () => (attempt = 0));
  const retry = (hintMs?: number) =>
    setTimeout(() => socket.connect(), hintMs === undefined ? backoffDelay(attempt++) : hintMs * (1 + Math.random() * 0.1));
  socket.on('connect_error', (error) => {
    refused++;
    retry(retryHintMs(error.message));
  });
  socket.on('disconnect', (reason) => {
    if (reason !== 'io client disconnect') retry();
  });
  socket.on('tunnel', (message: { type?: string; id?: number }) => {
    if (message?.type !== 'request' || typeof message.id !== 'number') return;
    const { id } = message;
    socket.emit('tunnel', [
      { type: 'head', id, status: 200, headers: { 'content-type': 'application/json', 'content-length': String(answer.byteLength) } },
      { type: 'data', id, chunk: answer },
      { type: 'end', id },
    ]);
  });
  sockets.push(socket);
}

const startedAt = Date.now();
let next = 0;
const opener = setInterval(() => {
  const due = Math.min(job.replicas.length, Math.ceil(((Date.now() - startedAt) / 1000) * job.perSecond) + 1);
  while (next < due) open(next++);
  if (next >= job.replicas.length) clearInterval(opener);
}, 20);

process.on('message', (message: string) => {
  if (message === 'status') process.send!({ connected, lastConnectedAt, refused, opened: next });
  if (message === 'stop') {
    for (const socket of sockets) socket.disconnect();
    setTimeout(() => process.exit(0), 200);
  }
});

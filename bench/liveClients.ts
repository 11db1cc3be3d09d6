// A child process of bench/live.ts: opens many SSE viewers of live graphs and reports, when told
// to stop, what they received: per append, the time from when its step was due (its time plus
// KAS_LIVE_DELAY) to its arrival. Several of these run at once so that the load generator is not
// what limits the figures.
import http from 'node:http';

interface Job {
  urls: string[];
  /** Viewer k watches urls[(offset + k) % urls.length]. */
  offset: number;
  count: number;
  token: string;
  delayMs: number;
  stepS: number;
  /** sse: live-graph viewers; poll: the alternative, a query_range per step per viewer. */
  mode: 'sse' | 'poll';
}

const job = JSON.parse(process.argv[2]!) as Job;
const latencies: number[] = [];
let snapshots = 0;
let appends = 0;
let gaps = 0;
let connected = 0;
let failed = 0;
const requests: http.ClientRequest[] = [];

function open(url: string): void {
  const last = { t: 0 };
  const request = http.get(url, { agent: false, headers: { authorization: `Bearer ${job.token}`, accept: 'text/event-stream' } }, (res) => {
    if (res.statusCode !== 200) {
      failed++;
      res.resume();
      return;
    }
    connected++;
    let buffer = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      const at = Date.now();
      buffer += chunk;
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const id = /^id: (.*)$/m.exec(block)?.[1];
        if (block.includes('event: snapshot')) {
          snapshots++;
          last.t = Number(id);
        } else if (block.includes('event: append')) {
          appends++;
          const t = Number(id);
          if (last.t && t > last.t + job.stepS) gaps += Math.round((t - last.t) / job.stepS) - 1;
          last.t = t;
          if (latencies.length < 500_000) latencies.push(at - (t * 1000 + job.delayMs));
        }
      }
    });
    res.on('error', () => undefined);
  });
  request.on('error', () => failed++);
  requests.push(request);
}

/** The alternative to a live graph: each viewer asks for the newest step once per step. */
function poll(url: string): void {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  connected++;
  const tick = () => {
    const t = Math.floor((Date.now() - job.delayMs) / 1000 / job.stepS) * job.stepS;
    const get = http.get(`${url}&start=${t}&end=${t}`, { agent }, (res) => {
      res.resume();
      res.on('end', () => {
        appends++;
        if (latencies.length < 500_000) latencies.push(Date.now() - (t * 1000 + job.delayMs));
      });
    });
    get.on('error', () => failed++);
    const next = (t + job.stepS) * 1000 + job.delayMs;
    timers.push(setTimeout(tick, Math.max(0, next - Date.now())));
  };
  tick();
}
const timers: NodeJS.Timeout[] = [];

for (let i = 0; i < job.count; i++) {
  const url = job.urls[(job.offset + i) % job.urls.length]!;
  if (job.mode === 'poll') poll(url);
  else open(url);
}

process.on('message', (message: string) => {
  if (message === 'status') return process.send!({ connected, snapshots, failed });
  if (message === 'reset') {
    latencies.length = 0;
    appends = 0;
    gaps = 0;
    return process.send!('ok');
  }
  if (message === 'report') {
    process.send!({ connected, snapshots, appends, gaps, failed, latencies });
    for (const request of requests) request.destroy();
    for (const timer of timers) clearTimeout(timer);
    setTimeout(() => process.exit(0), 200);
  }
});

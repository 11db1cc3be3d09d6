// An OTLP/HTTP trace receiver for tests: accepts POST /v1/traces in `http/json` (what the tests
// configure with OTEL_EXPORTER_OTLP_PROTOCOL=http/json) and keeps every span it is sent, flattened
// with its resource's service name and instance. `http/protobuf` bodies are accepted and counted
// but not decoded (the benchmark only needs them received).
import { EventEmitter } from 'node:events';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';

export type SpanKindName = 'UNSPECIFIED' | 'INTERNAL' | 'SERVER' | 'CLIENT' | 'PRODUCER' | 'CONSUMER';
const KINDS: SpanKindName[] = ['UNSPECIFIED', 'INTERNAL', 'SERVER', 'CLIENT', 'PRODUCER', 'CONSUMER'];
const STATUS = ['UNSET', 'OK', 'ERROR'] as const;

export type AttributeValue = string | number | boolean | null | AttributeValue[];

export interface ExportedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string | undefined;
  name: string;
  kind: SpanKindName;
  service: string;
  instance: string;
  scope: string;
  attributes: Record<string, AttributeValue>;
  events: { name: string; attributes: Record<string, AttributeValue> }[];
  /** Spans this one is linked to (not its parent). */
  links: { traceId: string; spanId: string }[];
  status: { code: (typeof STATUS)[number]; message: string | undefined };
  startNs: bigint;
  endNs: bigint;
}

export interface OtlpReceiver {
  /** Base URL for OTEL_EXPORTER_OTLP_ENDPOINT. */
  url: string;
  spans: ExportedSpan[];
  /** Export requests received, and their body bytes (any protocol). */
  stats: { requests: number; bytes: number };
  trace(traceId: string): ExportedSpan[];
  /** Resolves with the spans of the trace once `done` holds for them. */
  waitForTrace(traceId: string, done: (spans: ExportedSpan[]) => boolean, timeoutMs?: number): Promise<ExportedSpan[]>;
  stop(): Promise<void>;
}

interface JsonAnyValue {
  stringValue?: string;
  intValue?: string | number;
  doubleValue?: number;
  boolValue?: boolean;
  arrayValue?: { values?: JsonAnyValue[] };
}
interface JsonKeyValue {
  key: string;
  value?: JsonAnyValue;
}
interface JsonSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind?: number;
  startTimeUnixNano: string | number;
  endTimeUnixNano: string | number;
  attributes?: JsonKeyValue[];
  events?: { name: string; attributes?: JsonKeyValue[] }[];
  links?: { traceId: string; spanId: string }[];
  status?: { code?: number; message?: string };
}
interface JsonExport {
  resourceSpans?: {
    resource?: { attributes?: JsonKeyValue[] };
    scopeSpans?: { scope?: { name?: string }; spans?: JsonSpan[] }[];
  }[];
}

function valueOf(v: JsonAnyValue | undefined): AttributeValue {
  if (!v) return null;
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.doubleValue !== undefined) return v.doubleValue;
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.arrayValue) return (v.arrayValue.values ?? []).map(valueOf);
  return null;
}

function attributesOf(list: JsonKeyValue[] | undefined): Record<string, AttributeValue> {
  const out: Record<string, AttributeValue> = {};
  for (const kv of list ?? []) out[kv.key] = valueOf(kv.value);
  return out;
}

/** OTLP/JSON ids are hex; some encoders send base64 (as in protobuf's JSON mapping): accept both. */
function hexId(id: string | undefined, bytes: number): string | undefined {
  if (!id) return undefined;
  if (new RegExp(`^[0-9a-f]{${bytes * 2}}$`, 'i').test(id)) return id.toLowerCase();
  const decoded = Buffer.from(id, 'base64');
  return decoded.length === bytes ? decoded.toString('hex') : id;
}

export function flatten(body: JsonExport): ExportedSpan[] {
  const spans: ExportedSpan[] = [];
  for (const rs of body.resourceSpans ?? []) {
    const resource = attributesOf(rs.resource?.attributes);
    for (const ss of rs.scopeSpans ?? []) {
      for (const s of ss.spans ?? []) {
        spans.push({
          traceId: hexId(s.traceId, 16)!,
          spanId: hexId(s.spanId, 8)!,
          parentSpanId: hexId(s.parentSpanId, 8),
          name: s.name,
          kind: KINDS[s.kind ?? 0] ?? 'UNSPECIFIED',
          service: String(resource['service.name']),
          instance: String(resource['service.instance.id']),
          scope: ss.scope?.name ?? '',
          attributes: attributesOf(s.attributes),
          events: (s.events ?? []).map((e) => ({ name: e.name, attributes: attributesOf(e.attributes) })),
          links: (s.links ?? []).map((l) => ({ traceId: hexId(l.traceId, 16)!, spanId: hexId(l.spanId, 8)! })),
          status: { code: STATUS[s.status?.code ?? 0] ?? 'UNSET', message: s.status?.message || undefined },
          startNs: BigInt(s.startTimeUnixNano),
          endNs: BigInt(s.endTimeUnixNano),
        });
      }
    }
  }
  return spans;
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const raw = Buffer.concat(chunks);
  return req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw;
}

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ExportedSpan[] = [];
  const stats = { requests: 0, bytes: 0 };
  const events = new EventEmitter<{ spans: [] }>();
  const server = createServer((req, res) => {
    void (async () => {
      if (req.method !== 'POST' || req.url !== '/v1/traces') return void res.writeHead(404).end();
      const body = await readBody(req);
      stats.requests++;
      stats.bytes += body.byteLength;
      const type = req.headers['content-type'] ?? '';
      if (type.startsWith('application/json')) {
        spans.push(...flatten(JSON.parse(body.toString('utf8')) as JsonExport));
        events.emit('spans');
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      } else {
        // An empty ExportTraceServiceResponse is zero bytes of protobuf.
        res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
      }
    })().catch((error: unknown) => res.writeHead(400).end(String(error)));
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const traceOf = (traceId: string) => spans.filter((s) => s.traceId === traceId);
  return {
    url: `http://127.0.0.1:${port}`,
    spans,
    stats,
    trace: traceOf,
    waitForTrace(traceId, done, timeoutMs = 15_000) {
      if (done(traceOf(traceId))) return Promise.resolve(traceOf(traceId));
      return new Promise((resolve, reject) => {
        const check = () => {
          if (!done(traceOf(traceId))) return;
          clearTimeout(timer);
          events.off('spans', check);
          resolve(traceOf(traceId));
        };
        const timer = setTimeout(() => {
          events.off('spans', check);
          reject(new Error(`timed out after ${timeoutMs}ms waiting for trace ${traceId}; have:\n${describeTree(traceOf(traceId))}`));
        }, timeoutMs);
        events.on('spans', check);
      });
    },
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** The spans of one trace as an indented tree: `KIND name [service/instance] {key attributes}`. */
export function describeTree(spans: ExportedSpan[], keys: string[] = ['kas.agent.id', 'kas.agent.replica', 'kas.node', 'error.type', 'http.response.status_code']): string {
  const byParent = new Map<string | undefined, ExportedSpan[]>();
  const ids = new Set(spans.map((s) => s.spanId));
  for (const s of [...spans].sort((a, b) => (a.startNs < b.startNs ? -1 : 1))) {
    const parent = s.parentSpanId && ids.has(s.parentSpanId) ? s.parentSpanId : undefined;
    byParent.set(parent, [...(byParent.get(parent) ?? []), s]);
  }
  const lines: string[] = [];
  const walk = (parent: string | undefined, depth: number) => {
    for (const s of byParent.get(parent) ?? []) {
      const attrs = keys.filter((k) => s.attributes[k] !== undefined).map((k) => `${k}=${String(s.attributes[k])}`);
      const status = s.status.code === 'ERROR' ? ' ERROR' : '';
      const orphan = depth === 0 && s.parentSpanId ? ` (parent ${s.parentSpanId} not received)` : '';
      lines.push(`${'  '.repeat(depth)}${s.kind} ${s.name} [${s.service}/${s.instance}]${status}${attrs.length ? ` {${attrs.join(', ')}}` : ''}${orphan}`);
      walk(s.spanId, depth + 1);
    }
  };
  walk(undefined, 0);
  return lines.join('\n');
}

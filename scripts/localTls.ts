// `npm start`'s own certificate authority: on first start a CA and a server certificate for
// 127.0.0.1 and localhost (EC P-256) are made in `<data dir>/tls/`, and reused afterwards (a new
// server certificate only when the old one is about to expire or names other hosts).
//
// Made with node:crypto alone: it generates and signs, and the certificate around the signature
// is a short DER structure (RFC 5280) written here. That keeps the openssl CLI out of the run
// and spares the dependency tree an X.509 library brings (one with a global Reflect polyfill).
// Node's X509Certificate checks every certificate made here before it is used.
import { createHash, createPrivateKey, generateKeyPairSync, type KeyObject, randomBytes, sign, X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

const DAY_MS = 86_400_000;
const CA_DAYS = 3650;
const SERVER_DAYS = 365;
/** A server certificate with less time left than this is made anew. */
const RENEW_MS = 30 * DAY_MS;

export interface LocalTls {
  caFile: string;
  certFile: string;
  keyFile: string;
  caPem: string;
  /** What this call made: nothing (all reused), the server certificate, or both. */
  made: 'nothing' | 'server certificate' | 'ca and server certificate';
}

// ---- DER ------------------------------------------------------------------------------------

function lengthOf(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let rest = n; rest > 0; rest = Math.floor(rest / 256)) bytes.unshift(rest & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function tlv(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content);
  return Buffer.concat([Buffer.from([tag]), lengthOf(body.length), body]);
}

const sequence = (...content: Buffer[]) => tlv(0x30, ...content);
const set = (...content: Buffer[]) => tlv(0x31, ...content);
const octets = (content: Buffer) => tlv(0x04, content);
const explicit = (n: number, content: Buffer) => tlv(0xa0 + n, content);
const TRUE = tlv(0x01, Buffer.from([0xff]));

function oid(dotted: string): Buffer {
  const [a, b, ...rest] = dotted.split('.').map(Number);
  const bytes = [40 * a! + b!];
  for (const arc of rest) {
    const groups = [arc & 0x7f];
    for (let v = Math.floor(arc / 128); v > 0; v = Math.floor(v / 128)) groups.unshift((v & 0x7f) | 0x80);
    bytes.push(...groups);
  }
  return tlv(0x06, Buffer.from(bytes));
}

/** A non-negative INTEGER from big-endian bytes. */
function integer(value: Buffer): Buffer {
  let start = 0;
  while (start < value.length - 1 && value[start] === 0) start++;
  const trimmed = value.subarray(start);
  return tlv(0x02, trimmed[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), trimmed]) : trimmed);
}

/** A BIT STRING of whole bytes (a signature) or of named bits (key usage, trailing zeros dropped). */
function bits(value: Buffer, named = false): Buffer {
  let unused = 0;
  if (named) {
    const last = value[value.length - 1]!;
    while (unused < 7 && (last & (1 << unused)) === 0) unused++;
  }
  return tlv(0x03, Buffer.from([unused]), value);
}

function time(at: Date): Buffer {
  const iso = at.toISOString().replace(/[-:T]/g, '').slice(0, 14); // YYYYMMDDHHMMSS
  return at.getUTCFullYear() < 2050 ? tlv(0x17, Buffer.from(`${iso.slice(2)}Z`)) : tlv(0x18, Buffer.from(`${iso}Z`));
}

const commonName = (name: string) => sequence(set(sequence(oid('2.5.4.3'), tlv(0x0c, Buffer.from(name)))));
const extension = (id: string, value: Buffer, critical = false) => sequence(oid(id), ...(critical ? [TRUE] : []), octets(value));
const ECDSA_WITH_SHA256 = sequence(oid('1.2.840.10045.4.3.2'));

// ---- certificates ---------------------------------------------------------------------------

interface Made {
  pem: string;
  key: KeyObject;
}

function keyId(publicKey: KeyObject): Buffer {
  return createHash('sha1').update(publicKey.export({ type: 'spki', format: 'der' })).digest();
}

function certificate(options: {
  subject: string;
  issuer: { name: string; key: KeyObject; publicKey: KeyObject };
  publicKey: KeyObject;
  days: number;
  extensions: Buffer[];
}): string {
  const now = Date.now();
  const tbs = sequence(
    explicit(0, integer(Buffer.from([2]))), // v3
    integer(Buffer.concat([Buffer.from([0x01]), randomBytes(15)])),
    ECDSA_WITH_SHA256,
    commonName(options.issuer.name),
    sequence(time(new Date(now - 60_000)), time(new Date(now + options.days * DAY_MS))),
    commonName(options.subject),
    options.publicKey.export({ type: 'spki', format: 'der' }),
    explicit(3, sequence(
      extension('2.5.29.14', octets(keyId(options.publicKey))),
      extension('2.5.29.35', sequence(tlv(0x80, keyId(options.issuer.publicKey)))),
      ...options.extensions,
    )),
  );
  const der = sequence(tbs, ECDSA_WITH_SHA256, bits(sign('sha256', tbs, options.issuer.key)));
  const body = der.toString('base64').replace(/(.{64})/g, '$1\n').trimEnd();
  return `-----BEGIN CERTIFICATE-----\n${body}\n-----END CERTIFICATE-----\n`;
}

function makeCa(): Made {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const name = `kas local CA ${randomBytes(4).toString('hex')}`;
  const pem = certificate({
    subject: name,
    issuer: { name, key: privateKey, publicKey },
    publicKey,
    days: CA_DAYS,
    extensions: [
      extension('2.5.29.19', sequence(TRUE, integer(Buffer.from([0]))), true), // CA, no intermediates
      extension('2.5.29.15', bits(Buffer.from([0x06]), true), true), // keyCertSign, cRLSign
    ],
  });
  return { pem, key: privateKey };
}

function makeServer(ca: { cert: X509Certificate; key: KeyObject }, hosts: readonly string[]): Made {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const names = hosts.map((host) => {
    if (isIP(host) === 4) return tlv(0x87, Buffer.from(host.split('.').map(Number)));
    return tlv(0x82, Buffer.from(host));
  });
  const pem = certificate({
    subject: hosts[0] ?? 'localhost',
    issuer: { name: commonNameOf(ca.cert), key: ca.key, publicKey: ca.cert.publicKey },
    publicKey,
    days: SERVER_DAYS,
    extensions: [
      extension('2.5.29.19', sequence(), true), // not a CA
      extension('2.5.29.15', bits(Buffer.from([0x80]), true), true), // digitalSignature
      extension('2.5.29.37', sequence(oid('1.3.6.1.5.5.7.3.1'))), // serverAuth
      extension('2.5.29.17', sequence(...names)),
    ],
  });
  return { pem, key: privateKey };
}

function commonNameOf(cert: X509Certificate): string {
  return /CN=([^\n]+)/.exec(cert.subject)?.[1] ?? '';
}

function fits(server: X509Certificate, ca: X509Certificate, hosts: readonly string[]): boolean {
  if (!server.checkIssued(ca) || !server.verify(ca.publicKey)) return false;
  if (new Date(server.validTo).getTime() - Date.now() < RENEW_MS) return false;
  return hosts.every((host) => (isIP(host) ? server.checkIP(host) : server.checkHost(host)) !== undefined);
}

async function readOptional(file: string): Promise<string | undefined> {
  return readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw error;
  });
}

async function writePrivate(file: string, text: string): Promise<void> {
  await writeFile(`${file}.tmp`, text, { mode: 0o600 });
  await rename(`${file}.tmp`, file);
}

/** The CA and server certificate in `dir`, made or renewed as needed. */
export async function ensureLocalTls(dir: string, hosts: readonly string[] = ['127.0.0.1', 'localhost']): Promise<LocalTls> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const files = { caFile: join(dir, 'ca.crt'), caKey: join(dir, 'ca.key'), certFile: join(dir, 'server.crt'), keyFile: join(dir, 'server.key') };
  const [caPem, caKeyPem, certPem, keyPem] = await Promise.all([files.caFile, files.caKey, files.certFile, files.keyFile].map(readOptional));

  let made: LocalTls['made'] = 'nothing';
  let ca: { cert: X509Certificate; key: KeyObject; pem: string } | undefined;
  if (caPem && caKeyPem) {
    const cert = new X509Certificate(caPem);
    if (new Date(cert.validTo).getTime() - Date.now() > RENEW_MS) ca = { cert, key: createPrivateKey(caKeyPem), pem: caPem };
  }
  if (!ca) {
    const fresh = makeCa();
    await writePrivate(files.caKey, fresh.key.export({ type: 'pkcs8', format: 'pem' }).toString());
    await writePrivate(files.caFile, fresh.pem);
    ca = { cert: new X509Certificate(fresh.pem), key: fresh.key, pem: fresh.pem };
    made = 'ca and server certificate';
  }
  if (made !== 'nothing' || !certPem || !keyPem || !fits(new X509Certificate(certPem), ca.cert, hosts)) {
    const server = makeServer(ca, hosts);
    if (!fits(new X509Certificate(server.pem), ca.cert, hosts)) throw new Error('the server certificate just made does not verify');
    await writePrivate(files.keyFile, server.key.export({ type: 'pkcs8', format: 'pem' }).toString());
    await writePrivate(files.certFile, server.pem);
    if (made === 'nothing') made = 'server certificate';
  }
  return { caFile: files.caFile, certFile: files.certFile, keyFile: files.keyFile, caPem: ca.pem, made };
}

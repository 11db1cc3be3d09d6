import { execFile } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { findExecutable } from './tools.ts';

/** A throwaway certificate authority and one server certificate it signed, as files and PEM text. */
export interface TestPki {
  caFile: string;
  certFile: string;
  keyFile: string;
  caPem: string;
  certPem: string;
  keyPem: string;
}

export interface TestPkiOptions {
  /** Names the server certificate is valid for; IP addresses become IP SANs. Default 127.0.0.1 and localhost. */
  hosts?: readonly string[];
  /** Validity in days, starting now. Default 2. */
  days?: number;
}

/**
 * Writes ca.crt, ca.key, server.crt and server.key (EC P-256) into `dir` with the openssl CLI.
 * Go clients such as kubectl ignore the CN and need SANs, so the hosts all go into subjectAltName.
 */
export async function makeTestPki(dir: string, options: TestPkiOptions = {}): Promise<TestPki> {
  const openssl = findExecutable('openssl');
  if (openssl === undefined) throw new Error('openssl not found: install it with "sudo apt-get install -y openssl"');
  const hosts = options.hosts ?? ['127.0.0.1', 'localhost'];
  const days = String(options.days ?? 2);
  await mkdir(dir, { recursive: true });

  const file = (name: string) => join(dir, name);
  const sans = hosts.map((host) => (isIpAddress(host) ? `IP:${host}` : `DNS:${host}`)).join(',');
  await writeFile(
    file('server.ext'),
    [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage=serverAuth',
      `subjectAltName=${sans}`,
      'subjectKeyIdentifier=hash',
      'authorityKeyIdentifier=keyid',
      '',
    ].join('\n'),
  );

  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await run(openssl, [
    'req', '-x509', ...ec, '-keyout', file('ca.key'), '-out', file('ca.crt'), '-days', days,
    '-subj', '/CN=kas test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  await run(openssl, [
    'req', ...ec, '-keyout', file('server.key'), '-out', file('server.csr'), '-subj', `/CN=${hosts[0] ?? 'localhost'}`,
  ]);
  await run(openssl, [
    'x509', '-req', '-in', file('server.csr'), '-CA', file('ca.crt'), '-CAkey', file('ca.key'), '-CAcreateserial',
    '-out', file('server.crt'), '-days', days, '-extfile', file('server.ext'),
  ]);

  const [caPem, certPem, keyPem] = await Promise.all(
    ['ca.crt', 'server.crt', 'server.key'].map((name) => readFile(file(name), 'utf8')),
  );
  return {
    caFile: file('ca.crt'),
    certFile: file('server.crt'),
    keyFile: file('server.key'),
    caPem: caPem ?? '',
    certPem: certPem ?? '',
    keyPem: keyPem ?? '',
  };
}

function isIpAddress(host: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(host) || host.includes(':');
}

function run(command: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { timeout: 30_000 }, (err, _stdout, stderr) => {
      if (err) reject(new Error(`${command} ${args.join(' ')} failed: ${err.message}\n${stderr}`));
      else resolve();
    });
  });
}

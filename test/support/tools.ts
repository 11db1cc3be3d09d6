import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { findExecutable as findOnPath } from '../../scripts/which.ts';

export type Tool = 'redis-server' | 'redis-cli' | 'prometheus' | 'promtool' | 'kubectl' | 'chromium';

const debianPackage: Record<Tool, string> = {
  'redis-server': 'redis-server',
  'redis-cli': 'redis-tools',
  prometheus: 'prometheus',
  promtool: 'prometheus',
  kubectl: 'kubernetes-client',
  chromium: 'chromium',
};

// sbin directories are not on every user's PATH but apt installs daemons there.
const extraDirs = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

// A held lock older than this belongs to a hung or killed installer.
const staleLockMs = 30 * 60_000;
const lockPath = join(tmpdir(), 'kas-test-apt-install.lock');

const resolved = new Map<Tool, Promise<string>>();
let updatedPackageLists = false;

/** Absolute path of a tool the tests need, installing its Debian package when we can. */
export function requireTool(name: Tool): Promise<string> {
  let found = resolved.get(name);
  if (found === undefined) {
    found = locateOrInstall(name);
    // A failed attempt should not stick: the next test may run after someone installed it.
    found.catch(() => resolved.delete(name));
    resolved.set(name, found);
  }
  return found;
}

export function findExecutable(name: string): string | undefined {
  return findOnPath(name, extraDirs);
}

async function locateOrInstall(name: Tool): Promise<string> {
  const existing = findExecutable(name);
  if (existing !== undefined) return existing;

  const pkg = debianPackage[name];
  const manual = `install it with "sudo apt-get install -y ${pkg}"`;
  const aptGet = findExecutable('apt-get');
  if (process.getuid?.() !== 0 || aptGet === undefined) {
    throw new Error(`${name} not found: ${manual}`);
  }

  const release = await acquireInstallLock(name);
  try {
    // Another test process may have installed it while we waited for the lock.
    const installedMeanwhile = findExecutable(name);
    if (installedMeanwhile !== undefined) return installedMeanwhile;

    log(`${name} not found: installing Debian package ${pkg} (apt output follows)`);
    let code = await apt(aptGet, ['install', '-y', pkg]);
    if (code !== 0 && !updatedPackageLists) {
      log(`apt-get install ${pkg} failed (exit ${code}); refreshing package lists and retrying`);
      await apt(aptGet, ['update']);
      updatedPackageLists = true;
      code = await apt(aptGet, ['install', '-y', pkg]);
    }
    const installed = findExecutable(name);
    if (installed === undefined) {
      throw new Error(`${name} not found and "apt-get install -y ${pkg}" failed (exit ${code}): ${manual}`);
    }
    log(`installed ${pkg}: ${installed}`);
    return installed;
  } finally {
    release();
  }
}

function apt(aptGet: string, args: string[]): Promise<number> {
  return new Promise((resolve) => {
    // Waiting on dpkg's own lock covers an apt run that was started outside the tests.
    const child = spawn(aptGet, ['-o', 'DPkg::Lock::Timeout=600', ...args], {
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      stdio: ['ignore', 2, 2],
    });
    child.once('error', (err) => {
      log(`could not run apt-get: ${err.message}`);
      resolve(-1);
    });
    child.once('exit', (code, signal) => resolve(code ?? (signal === null ? -1 : 128)));
  });
}

/** Parallel test processes install one package at a time, so apt output stays readable. */
async function acquireInstallLock(name: Tool): Promise<() => void> {
  let announced = false;
  for (;;) {
    try {
      const fd = openSync(lockPath, 'wx');
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return () => {
        try {
          unlinkSync(lockPath);
        } catch {
          // already removed as stale by someone else; nothing to release
        }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = lockHolder();
    if (holder === undefined || isStale(holder)) {
      try {
        unlinkSync(lockPath);
      } catch {
        // a competitor removed it first
      }
      continue;
    }
    if (!announced) {
      log(`waiting for pid ${holder.pid} to finish installing packages before installing ${name}`);
      announced = true;
    }
    await sleep(500);
  }
}

interface LockHolder {
  pid: number | undefined;
  since: number;
}

function lockHolder(): LockHolder | undefined {
  try {
    const pid = Number.parseInt(readFileSync(lockPath, 'utf8'), 10);
    return { pid: Number.isNaN(pid) ? undefined : pid, since: statSync(lockPath).mtimeMs };
  } catch {
    return undefined;
  }
}

function isStale(holder: LockHolder): boolean {
  const age = Date.now() - holder.since;
  // Without a pid the holder is between creating and writing the file, which takes moments.
  if (holder.pid === undefined) return age > 10_000;
  return !isAlive(holder.pid) || age > staleLockMs;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function log(message: string): void {
  process.stderr.write(`[test tools] ${message}\n`);
}

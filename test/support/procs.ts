import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

const keptOutputChars = 200 * 1024;

export type LineMatcher = RegExp | ((line: string) => boolean);

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface StartOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

// Children of a test that throws before its cleanup must not outlive the test process.
const running = new Set<Proc>();
process.on('exit', () => {
  for (const proc of running) proc.signal('SIGKILL');
});

export class Proc {
  readonly name: string;
  readonly child: ChildProcess;
  #output = '';
  #lines: string[] = [];
  #linesChars = 0;
  #partial = { stdout: '', stderr: '' };
  #lineListeners = new Set<(line: string) => void>();
  #exit: ExitStatus | undefined;
  #exited: Promise<ExitStatus>;

  private constructor(name: string, child: ChildProcess) {
    this.name = name;
    this.child = child;
    this.#exited = new Promise((resolve) => {
      child.once('error', (err) => {
        // spawn failures (ENOENT, EACCES) arrive here instead of 'exit'
        this.#append('stderr', `[spawn error] ${err.message}\n`);
        this.#settle({ code: null, signal: null }, resolve);
      });
      // Prefer 'close' so the last output has been read when we report the exit, but do not
      // wait forever: a grandchild that inherited the pipes can keep them open.
      child.once('close', (code, signal) => this.#settle({ code, signal }, resolve));
      child.once('exit', (code, signal) => {
        setTimeout(() => this.#settle({ code, signal }, resolve), 500).unref();
      });
    });
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => this.#append('stdout', chunk));
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => this.#append('stderr', chunk));
  }

  static start(name: string, command: string, args: readonly string[] = [], options: StartOptions = {}): Proc {
    const child = spawn(command, args, {
      env: options.env ?? process.env,
      cwd: options.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const proc = new Proc(name, child);
    running.add(proc);
    return proc;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Exit status once the process has ended, undefined while it runs. */
  get exitStatus(): ExitStatus | undefined {
    return this.#exit;
  }

  /** Recent combined stdout and stderr, for assertion messages. */
  output(): string {
    return this.#output + this.#partial.stdout + this.#partial.stderr;
  }

  /** `name` plus recent output, ready to append to an assertion message. */
  describe(): string {
    const state = this.#exit === undefined ? `pid ${this.pid}` : `exited ${formatExit(this.#exit)}`;
    return `--- ${this.name} (${state}) output ---\n${this.output()}\n--- end of ${this.name} ---`;
  }

  /** Resolves with the first line (already seen or future) that matches. */
  waitForLine(match: LineMatcher, timeoutMs = 10_000): Promise<string> {
    const test = typeof match === 'function' ? match : (line: string) => match.test(line);
    const seen = this.#lines.find(test);
    if (seen !== undefined) return Promise.resolve(seen);

    return new Promise((resolve, reject) => {
      const cleanup = () => {
        clearTimeout(timer);
        this.#lineListeners.delete(listener);
      };
      const listener = (line: string) => {
        if (!test(line)) return;
        cleanup();
        resolve(line);
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out after ${timeoutMs}ms waiting for ${this.name} to print ${match}\n${this.describe()}`));
      }, timeoutMs);
      this.#lineListeners.add(listener);
      void this.#exited.then((status) => {
        if (!this.#lineListeners.has(listener)) return;
        cleanup();
        reject(new Error(`${this.name} exited ${formatExit(status)} before printing ${match}\n${this.describe()}`));
      });
    });
  }

  async waitForExit(timeoutMs = 10_000): Promise<ExitStatus> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`timed out after ${timeoutMs}ms waiting for ${this.name} to exit\n${this.describe()}`)),
        timeoutMs,
      );
    });
    try {
      return await Promise.race([this.#exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * waitFor that gives up as soon as this process exits, and puts its output in the error,
   * typically for readiness probes.
   */
  async waitFor<T>(fn: () => T | Promise<T>, options: WaitForOptions = {}): Promise<Exclude<T, false | null | undefined>> {
    try {
      return await waitFor(fn, {
        ...options,
        giveUpIf: () => (this.#exit === undefined ? undefined : `${this.name} exited ${formatExit(this.#exit)}`),
      });
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${this.describe()}`, { cause: err });
    }
  }

  /** Asks politely, then SIGKILLs after graceMs. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 5_000): Promise<ExitStatus> {
    if (this.#exit !== undefined) return this.#exit;
    this.signal(signal);
    // The grace timer is cleared on a prompt exit so it cannot hold the test process open.
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<undefined>((resolve) => (timer = setTimeout(resolve, graceMs, undefined)));
    const status = await Promise.race([this.#exited, graceOver]);
    clearTimeout(timer);
    if (status !== undefined) return status;
    return this.kill();
  }

  kill(): Promise<ExitStatus> {
    this.signal('SIGKILL');
    return this.#exited;
  }

  /** Sends a signal without waiting, e.g. SIGSTOP/SIGCONT to simulate a frozen process. */
  signal(signal: NodeJS.Signals): void {
    if (this.#exit !== undefined) return;
    try {
      this.child.kill(signal);
    } catch {
      // already gone
    }
  }

  /** Resident set size in bytes, from /proc. */
  rss(): number {
    if (this.pid === undefined || this.#exit !== undefined) throw new Error(`${this.name} is not running`);
    const status = readFileSync(`/proc/${this.pid}/status`, 'utf8');
    const kib = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status)?.[1];
    if (kib === undefined) throw new Error(`no VmRSS in /proc/${this.pid}/status`);
    return Number(kib) * 1024;
  }

  #append(stream: 'stdout' | 'stderr', chunk: string): void {
    const text = this.#partial[stream] + chunk;
    const parts = text.split('\n');
    this.#partial[stream] = parts.pop() ?? '';
    for (const line of parts) this.#addLine(line);
  }

  #addLine(line: string): void {
    this.#output += line + '\n';
    if (this.#output.length > keptOutputChars) this.#output = this.#output.slice(-keptOutputChars);
    this.#lines.push(line);
    this.#linesChars += line.length;
    while (this.#linesChars > keptOutputChars && this.#lines.length > 1) {
      this.#linesChars -= this.#lines.shift()?.length ?? 0;
    }
    for (const listener of this.#lineListeners) listener(line);
  }

  #settle(status: ExitStatus, resolve: (status: ExitStatus) => void): void {
    if (this.#exit !== undefined) return;
    for (const stream of ['stdout', 'stderr'] as const) {
      // An unterminated last line is still a line worth matching.
      if (this.#partial[stream] !== '') {
        const last = this.#partial[stream];
        this.#partial[stream] = '';
        this.#addLine(last);
      }
    }
    this.#exit = status;
    running.delete(this);
    resolve(status);
  }
}

function formatExit(status: ExitStatus): string {
  return status.signal !== null ? `by ${status.signal}` : `with code ${status.code}`;
}

/**
 * Prints the output of the given processes when the test fails, so a CI log shows why.
 * node:test sets `passed` on the context at runtime; @types/node does not declare it yet.
 */
export function dumpOnFailure(t: TestContext, ...procs: Proc[]): void {
  t.after(() => {
    if ((t as TestContext & { passed?: boolean }).passed !== false) return;
    for (const proc of procs) process.stderr.write(`${proc.describe()}\n`);
  });
}

export interface WaitForOptions {
  timeoutMs?: number;
  intervalMs?: number;
  what?: string;
  /** Returns a reason to stop polling at once, e.g. because the server being probed died. */
  giveUpIf?: () => string | undefined;
}

/**
 * Polls until fn returns something other than false/null/undefined without throwing,
 * and returns that value.
 */
export async function waitFor<T>(
  fn: () => T | Promise<T>,
  { timeoutMs = 10_000, intervalMs = 50, what = 'condition', giveUpIf }: WaitForOptions = {},
): Promise<Exclude<T, false | null | undefined>> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await fn();
      if (value !== false && value !== null && value !== undefined) {
        return value as Exclude<T, false | null | undefined>;
      }
      lastError = undefined;
    } catch (err) {
      lastError = err;
    }
    const cause = lastError === undefined ? '' : `: ${lastError instanceof Error ? lastError.message : String(lastError)}`;
    const reason = giveUpIf?.();
    if (reason !== undefined) {
      throw new Error(`${reason} while waiting for ${what}${cause}`, { cause: lastError });
    }
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}${cause}`, { cause: lastError });
    }
    await sleep(intervalMs);
  }
}

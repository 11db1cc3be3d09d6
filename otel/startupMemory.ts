// Start-up leaves garbage behind: compiling every module, parsing settings and the first
// connection grow V8's young generation to its full size (16–32 MiB) and fill the old one with
// what was only needed once. Left alone, V8 keeps that memory committed until allocation picks up
// again, which for an idle agentk may be never: about 15 MB of RSS that nothing uses. Once the
// program has settled, one full collection that also shrinks the heap's spaces gives it back;
// under load V8 grows them again as it would have. It runs once per process, a few milliseconds.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

type GcOptions = { type: 'major'; execution: 'sync'; flavor: 'last-resort' };
let done = false;

/** Schedules the one collection `delayMs` from now (unref'd: it never keeps a process alive). */
export function releaseStartupMemory(delayMs = 3000): void {
  if (done) return;
  done = true;
  setTimeout(collectOnce, delayMs).unref();
}

function collectOnce(): void {
  // `gc` exists only when V8 was started with --expose-gc; setting the flag now makes it available
  // to contexts made afterwards, and a new context hands its `gc` out. The flag is set back.
  const exposed = typeof (globalThis as { gc?: unknown }).gc === 'function';
  if (!exposed) setFlagsFromString('--expose-gc');
  try {
    const gc = runInNewContext('gc') as (options: GcOptions) => void;
    gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
  } finally {
    if (!exposed) setFlagsFromString('--no-expose-gc');
  }
}

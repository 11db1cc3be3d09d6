// Start-up leaves garbage behind: compiling every module, parsing settings and the first
// connection grow V8's young generation to its full size (16–32 MiB) and fill the old one with
// what was only needed once. Left alone, V8 keeps that memory committed until allocation picks up
// again, which for an idle agentk may be never: about 10 MB of RSS that nothing uses. Once the
// program has settled, one full collection that also shrinks the heap's spaces gives it back.
//
// agentk makes it (an agent idles most of its life, in every cluster); kas does not. Measured side
// by side (bench/README.md, "Footprint"): in kas it cost about a tenth of the CPU per request for
// tens of seconds of load afterwards, as V8 grows back and re-learns what the collection threw
// away; in agentk the difference was within the noise, and kas meets its memory target without it.
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

// The one collection agentk makes once settled after start-up (agent/startupMemory.ts):
// it gives back the heap that start-up grew, leaves `gc` unexposed to the program, runs once, and
// keeps no process alive.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const MODULE = fileURLToPath(new URL('../../agent/startupMemory.ts', import.meta.url));

interface Heap {
  newSpaceBefore: number;
  newSpaceAfter: number;
  totalBefore: number;
  totalAfter: number;
  gcExposed: string;
  ms: number;
}

/** A process whose start-up makes garbage, then calls releaseStartupMemory with each delay in turn. */
async function startUp(delays: number[]): Promise<Heap> {
  const program = `
    import { getHeapSpaceStatistics } from 'node:v8';
    import { releaseStartupMemory } from ${JSON.stringify(MODULE)};
    const newSpace = () => getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size;
    // Start-up's garbage: enough short-lived objects that V8 grows its young generation to the full.
    let keep = [];
    for (let i = 0; i < 400_000; i++) { keep.push({ i, s: 'x'.repeat(i % 64) }); if (keep.length > 100_000) keep = []; }
    keep = undefined;
    const newSpaceBefore = newSpace(), totalBefore = process.memoryUsage().heapTotal;
    for (const delay of ${JSON.stringify(delays)}) releaseStartupMemory(delay);
    await new Promise((r) => setTimeout(r, 400));
    console.log(JSON.stringify({ newSpaceBefore, newSpaceAfter: newSpace(), totalBefore, totalAfter: process.memoryUsage().heapTotal, gcExposed: typeof globalThis.gc }));
  `;
  const started = Date.now();
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', program]);
  return { ...(JSON.parse(stdout) as Omit<Heap, 'ms'>), ms: Date.now() - started };
}

test('the collection gives back what start-up grew, and leaves gc unexposed to the program', async () => {
  const heap = await startUp([50]);
  assert.equal(heap.gcExposed, 'undefined');
  assert.ok(heap.newSpaceAfter * 4 <= heap.newSpaceBefore, `young generation ${heap.newSpaceBefore} → ${heap.newSpaceAfter} bytes`);
  assert.ok(heap.totalAfter * 2 <= heap.totalBefore, `heap ${heap.totalBefore} → ${heap.totalAfter} bytes`);
});

test('only the first call counts, and its timer keeps no process alive', async () => {
  // The first call's collection would come after the process is done: the second schedules nothing.
  const heap = await startUp([120_000, 50]);
  assert.equal(heap.newSpaceAfter, heap.newSpaceBefore, 'no collection shrank the young generation');
  assert.ok(heap.ms < 60_000, `the process ended after ${heap.ms} ms`);
});

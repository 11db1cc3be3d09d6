#!/usr/bin/env node
// The image's HEALTHCHECK: exits 0 when the program in this container answers /liveness on its
// observability port. The image runs kas or agentk, so it asks both programs' ports (from their
// settings, or their defaults) and is healthy when one answers.
const candidates = [
  process.env.KAS_OBSERVABILITY_LISTEN || '127.0.0.1:8151',
  process.env.AGENTK_OBSERVABILITY_LISTEN || '127.0.0.1:8181',
].map((listen) => listen.replace(/^(0\.0\.0\.0|\[::\]|::)?:/, '127.0.0.1:'));

async function live(hostPort: string): Promise<boolean> {
  try {
    const res = await fetch(`http://${hostPort}/liveness`, { signal: AbortSignal.timeout(2_000) });
    return res.status === 200;
  } catch {
    return false;
  }
}

const answers = await Promise.all(candidates.map(live));
process.exitCode = answers.includes(true) ? 0 : 1;

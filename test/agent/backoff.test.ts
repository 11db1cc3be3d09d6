// agentk reconnects with exponential backoff and jitter, so a fleet does not reconnect in step.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BACKOFF_BASE_MS, BACKOFF_MAX_MS, backoffDelay } from '../../agent/connection.ts';

test('the delay doubles per attempt, stays within half and all of its ceiling, and is capped', () => {
  for (let attempt = 0; attempt < 20; attempt++) {
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** attempt);
    assert.equal(backoffDelay(attempt, () => 0), ceiling / 2);
    assert.equal(backoffDelay(attempt, () => 1), ceiling);
  }
  assert.equal(backoffDelay(50, () => 1), BACKOFF_MAX_MS);
});

test('two replicas failing at the same attempt usually wait different times', () => {
  const delays = new Set(Array.from({ length: 50 }, () => backoffDelay(6)));
  assert.ok(delays.size > 25, `only ${delays.size} distinct delays in 50 draws`);
});

// Credentials never reach a log line (otel/logger.ts): a token or an authorization at the top of
// a line or one level down, and a cookie among headers, are censored wherever a caller put them,
// in child bindings too, and the caller's objects are left as they were.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const LOGGER = fileURLToPath(new URL('../../otel/logger.ts', import.meta.url));

test('tokens, authorizations and cookies are censored in every place a caller may put them', async () => {
  const program = `
    import { createLogger } from ${JSON.stringify(LOGGER)};
    const log = createLogger('test');
    const headers = { authorization: 'Bearer s3cret-1', cookie: 'session=s3cret-2', accept: 'text/plain' };
    const auth = { token: 's3cret-3', replica: 'r-0' };
    log.info({ token: 's3cret-4', authorization: 'Basic s3cret-5', headers, auth, agent: { id: 'a', token: 's3cret-6' }, list: ['token'], n: 1 }, 'one');
    log.child({ token: 's3cret-7', conn: { authorization: 's3cret-8' } }).info({ plain: 'kept' }, 'two');
    log.child({ replica: 'r' }).child({ auth: { token: 's3cret-9' } }).info('grandchild');
    log.info({ nested: { deeper: { token: 'kept-3-deep' } }, empty: null, none: undefined }, 'three');
    process.stderr.write(JSON.stringify({ headers, auth }));
  `;
  const { stdout, stderr } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', program]);
  assert.doesNotMatch(stdout, /s3cret/, 'no secret reached a line');
  const [one, two, grandchild, three] = stdout.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
  assert.equal(one!.token, '[redacted]');
  assert.equal(one!.authorization, '[redacted]');
  assert.deepEqual(one!.headers, { authorization: '[redacted]', cookie: '[redacted]', accept: 'text/plain' });
  assert.deepEqual(one!.auth, { token: '[redacted]', replica: 'r-0' });
  assert.deepEqual(one!.agent, { id: 'a', token: '[redacted]' });
  assert.deepEqual(one!.list, ['token']);
  assert.equal(one!.n, 1);
  assert.equal(two!.token, '[redacted]');
  assert.deepEqual(two!.conn, { authorization: '[redacted]' });
  assert.equal(two!.plain, 'kept');
  assert.deepEqual(grandchild!.auth, { token: '[redacted]' });
  assert.equal(grandchild!.replica, 'r');
  assert.deepEqual(three!.nested, { deeper: { token: 'kept-3-deep' } }, 'two levels down is not a place credentials are logged');
  assert.deepEqual(JSON.parse(stderr), {
    headers: { authorization: 'Bearer s3cret-1', cookie: 'session=s3cret-2', accept: 'text/plain' },
    auth: { token: 's3cret-3', replica: 'r-0' },
  }, "the caller's objects are unchanged");
});

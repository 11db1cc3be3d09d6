import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ConfigError } from '../config.ts';

export const SECRET_MIN_BYTES = 32;

/**
 * Reads a secret file (base64 of at least 32 random bytes). A single node may generate a missing
 * one; a cluster never does, since nodes that invented their own secrets could not trust each
 * other's tokens.
 */
export async function loadSecret(file: string, setting: string, mayGenerate: boolean): Promise<Uint8Array> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    if (!mayGenerate) {
      throw new ConfigError(
        `${setting} (${file}) does not exist. With KAS_REDIS_URL set every node must be given the same secret; ` +
          `create one with: head -c 32 /dev/urandom | base64 > ${file}`,
      );
    }
    text = randomBytes(SECRET_MIN_BYTES).toString('base64');
    await mkdir(dirname(file), { recursive: true, mode: 0o700 });
    await writeFile(file, `${text}\n`, { mode: 0o600, flag: 'wx' }).catch(async (e: NodeJS.ErrnoException) => {
      // Another process created it first: use theirs.
      if (e.code !== 'EEXIST') throw e;
      text = await readFile(file, 'utf8');
    });
  }
  const secret = Buffer.from(text.trim(), 'base64');
  if (secret.length < SECRET_MIN_BYTES) {
    throw new ConfigError(`${setting} (${file}) must hold base64 of at least ${SECRET_MIN_BYTES} random bytes`);
  }
  return new Uint8Array(secret);
}

// agent.yaml, read, parsed and checked against its schema (agent/modules/fileSchema.ts) in a
// short-lived child process that hands back the result as JSON. The YAML parser and zod would
// stay in agentk's memory for as long as it runs (bench/README.md, footprint) for a file read
// once at start. The child costs a Node start (about 0.1 s) on top of loading them, once.
//
// Run as a program (`node agentFile.ts <path>`), this file is that child: it prints one line of
// JSON, the config or the error to report.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type ChildOutput, childEnv, childResult } from './childEnv.ts';
import type { AgentFileConfig } from './modules/fileSchema.ts';

/** agent.yaml at `path`, checked; throws an Error that says what is wrong with it. */
export function readAgentFile(path: string): AgentFileConfig {
  let stdout: string;
  try {
    stdout = execFileSync(process.execPath, [fileURLToPath(import.meta.url), path], {
      encoding: 'utf8',
      env: childEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
      maxBuffer: 16 * 1024 * 1024,
      timeout: 30_000,
    });
  } catch (error) {
    const { stderr, message } = error as { stderr?: string; message: string };
    throw new Error(`could not check the config file ${path}: ${stderr?.trim() || message}`);
  }
  return childResult<AgentFileConfig>(stdout);
}

/** The child: parses and checks the file, in the words agentk reports. */
async function checkInChild(path: string): Promise<ChildOutput<AgentFileConfig>> {
  const [{ parse }, { AgentFileSchema }] = await Promise.all([import('yaml'), import('./modules/fileSchema.ts')]);
  let raw: unknown;
  try {
    raw = parse(readFileSync(path, 'utf8')) ?? {};
  } catch (error) {
    return { error: `cannot read the config file ${path}: ${(error as Error).message}` };
  }
  const parsed = AgentFileSchema.safeParse(raw);
  if (parsed.success) return { config: parsed.data };
  const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`).join('; ');
  return { error: `${path} is not a valid agentk config: ${issues}` };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.stdout.write(`${JSON.stringify(await checkInChild(process.argv[2] ?? ''))}\n`);
}

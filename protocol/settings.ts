// A program's settings as one declared table: for each, the environment variable, the flag that
// mirrors it (`--redis-url` ⇔ KAS_REDIS_URL), its default, what it means and how its text becomes
// a value. kas and agentk read their command line and environment and write their --help from
// such a table, so a new setting is one entry in it. Nothing here knows either program.
import { resolve } from 'node:path';
import { parseDuration } from './durations.ts';

/** A value or flag the user gave that cannot work; the programs exit 2 on it. */
export class SettingError extends Error {
  override name = 'SettingError';
}

/** How the text of a setting becomes its value. */
export interface Kind<T> {
  /** Stands for the value in help: `--api-listen <host:port>`. */
  readonly placeholder: string;
  /** Completes "expected …" in an error. */
  readonly expected: string;
  /** The value, or undefined when the text is not one. */
  parse(text: string): T | undefined;
}

/** Raw settings by key: the environment variable, or the flag name for a command's own flags. */
export type RawSettings = Record<string, string | undefined>;

export interface Setting<T> {
  /** The environment variable; absent for a command's own flags (`kas token issue --sub`). */
  readonly env?: string;
  /** The flag without dashes; by default the variable without the program's prefix, kebab-cased. */
  readonly flag?: string;
  readonly description: string;
  readonly kind: Kind<T>;
  /**
   * Used when the setting is not given, parsed like given text. A function computes it from the
   * settings above it in the table (raw text, defaults applied), with `shown` saying it in help.
   */
  readonly default?: string | { readonly shown: string; compute(earlier: RawSettings): string };
  /** Must be given; the text is an example for the error. */
  readonly required?: string;
}

export type SettingsTable = Record<string, Setting<unknown>>;

/** The values a table gives: a setting with a default or required always has one. */
export type SettingValues<T extends SettingsTable> = {
  readonly [K in keyof T]: T[K] extends Setting<infer V>
    ? T[K] extends { default: unknown } | { required: string }
      ? V
      : V | undefined
    : never;
};

/** Fills in each setting's flag from its variable (KAS_REDIS_URL → redis-url with prefix KAS_). */
export function declareSettings<T extends SettingsTable>(prefix: string, table: T): { readonly [K in keyof T]: T[K] & { readonly flag: string } } {
  const declared: Record<string, Setting<unknown>> = {};
  for (const [key, setting] of Object.entries(table)) {
    if (setting.flag === undefined && setting.env === undefined) throw new Error(`setting ${key} has neither env nor flag`);
    const name = setting.env?.startsWith(prefix) ? setting.env.slice(prefix.length) : setting.env;
    declared[key] = { ...setting, flag: setting.flag ?? name!.toLowerCase().replaceAll('_', '-') };
  }
  return declared as { readonly [K in keyof T]: T[K] & { readonly flag: string } };
}

function keyOf(setting: Setting<unknown>): string {
  return setting.env ?? `--${setting.flag}`;
}

function flagOf(setting: Setting<unknown>): string {
  return `--${setting.flag}`;
}

// ---- kinds ----------------------------------------------------------------------------------

export interface HostPort {
  host: string;
  port: number;
}

export const text: Kind<string> = {
  placeholder: 'text',
  expected: 'some text',
  parse: (value) => value,
};

/** A file or directory; relative paths are taken from the working directory. */
export const path: Kind<string> = {
  placeholder: 'path',
  expected: 'a path',
  parse: (value) => resolve(value),
};

export const hostPort: Kind<HostPort> = {
  placeholder: 'host:port',
  expected: 'host:port, for example 127.0.0.1:8153 (or :8153 for every address)',
  parse(value) {
    const match = /^(.*):(\d{1,5})$/.exec(value);
    const port = match ? Number(match[2]) : NaN;
    if (!match || port > 65535) return undefined;
    const host = match[1]!.replace(/^\[(.*)\]$/, '$1');
    return { host: host === '' ? '0.0.0.0' : host, port };
  },
};

/** Milliseconds from `500ms`, `20s`, `5m`, `1h`; zero allowed. */
export const duration: Kind<number> = {
  placeholder: 'duration',
  expected: 'a duration such as 500ms, 20s, 5m or 1h',
  parse: (value) => parseDuration(value),
};

export const positiveDuration: Kind<number> = {
  placeholder: 'duration',
  expected: 'a duration above zero such as 500ms, 20s, 5m or 1h',
  parse(value) {
    const ms = parseDuration(value);
    return ms !== undefined && ms > 0 ? ms : undefined;
  },
};

/** `true`/`false` (also 1/0, yes/no). */
export const boolean: Kind<boolean> = {
  placeholder: 'true|false',
  expected: 'true or false',
  parse(value) {
    const v = value.trim().toLowerCase();
    if (['true', '1', 'yes'].includes(v)) return true;
    if (['false', '0', 'no'].includes(v)) return false;
    return undefined;
  },
};

export const positiveInteger: Kind<number> = {
  placeholder: 'n',
  expected: 'a whole number above zero',
  parse: (value) => (/^\d+$/.test(value) && Number(value) > 0 && Number.isSafeInteger(Number(value)) ? Number(value) : undefined),
};

/** A URL with one of these schemes, without a trailing slash. */
export function url(schemes: readonly string[], example: string, check?: (url: string) => boolean): Kind<string> {
  return {
    placeholder: 'url',
    expected: `a ${schemes.map((s) => `${s}://`).join(' or ')} URL, for example ${example}`,
    parse(value) {
      let parsed: URL;
      try {
        parsed = new URL(value);
      } catch {
        return undefined;
      }
      if (!schemes.includes(parsed.protocol.replace(/:$/, ''))) return undefined;
      if (check && !check(value)) return undefined;
      return value.replace(/\/+$/, '');
    },
  };
}

export function describeDefault(setting: Setting<unknown>): string {
  if (setting.required !== undefined) return 'required';
  if (setting.default === undefined) return 'unset';
  return typeof setting.default === 'string' ? setting.default : setting.default.shown;
}

// ---- reading --------------------------------------------------------------------------------

/**
 * The settings of `table` (or of its entries named in `keys`) from raw text: given values
 * first, then defaults. An empty value counts as not given, as `KAS_REDIS_URL=` in a compose
 * file means. `fromFlags` holds the keys given as flags, so that errors name what the user typed.
 */
export function readSettings<T extends SettingsTable>(
  table: T,
  raw: RawSettings,
  fromFlags: ReadonlySet<string> = new Set(),
  keys: readonly (keyof T & string)[] = Object.keys(table),
): SettingValues<T> {
  const resolved: RawSettings = {};
  const values: Record<string, unknown> = {};
  for (const name of Object.keys(table)) {
    if (!keys.includes(name)) continue;
    const setting = table[name]!;
    const key = keyOf(setting);
    const given = raw[key] === '' ? undefined : raw[key];
    let value = given;
    if (value === undefined && setting.default !== undefined) {
      value = typeof setting.default === 'string' ? setting.default : setting.default.compute(resolved);
    }
    resolved[key] = value;
    if (value === undefined) {
      if (setting.required !== undefined) {
        const env = setting.env ? ` (or set ${setting.env})` : '';
        throw new SettingError(`${flagOf(setting)} is required${env}: expected ${setting.kind.expected}; for example ${flagOf(setting)} ${setting.required}`);
      }
      values[name] = undefined;
      continue;
    }
    const parsed = setting.kind.parse(value);
    if (parsed === undefined) {
      const where = given === undefined ? `the default of ${flagOf(setting)}` : fromFlags.has(key) ? flagOf(setting) : setting.env;
      throw new SettingError(`${where} ${JSON.stringify(value)} is not valid: expected ${setting.kind.expected}`);
    }
    values[name] = parsed;
  }
  return values as SettingValues<T>;
}

// ---- the command line -----------------------------------------------------------------------

export interface CommandLine {
  /** The environment with the flags laid over it, by setting key. */
  settings: RawSettings;
  /** Keys whose value came from a flag. */
  fromFlags: Set<string>;
  positionals: string[];
  help: boolean;
  version: boolean;
}

/**
 * Splits `--flag value`, `--flag=value`, `--help`, `--version` and positional arguments. Only
 * the flags of `flags` are known; any other flag, a flag without its value or more positionals
 * than `positionals` names is a SettingError.
 */
export function parseCommandLine(
  argv: readonly string[],
  env: RawSettings,
  options: { flags: readonly FlagGroup[]; positionals?: readonly string[]; command: string },
): CommandLine {
  const byFlag = new Map<string, Setting<unknown>>();
  for (const { table, keys = Object.keys(table) } of options.flags) for (const name of keys) byFlag.set(table[name]!.flag!, table[name]!);
  const line: CommandLine = { settings: { ...env }, fromFlags: new Set(), positionals: [], help: false, version: false };
  const seeHelp = `see ${options.command} --help`;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') {
      line.help = true;
      continue;
    }
    if (arg === '--version') {
      line.version = true;
      continue;
    }
    if (!arg.startsWith('-') || arg === '-') {
      line.positionals.push(arg);
      continue;
    }
    const [name, inline] = arg.replace(/^--?/, '').split(/=(.*)/s, 2) as [string, string | undefined];
    const setting = byFlag.get(name);
    if (!setting) throw new SettingError(`unknown flag ${arg.split('=')[0]} for ${options.command}; ${seeHelp}`);
    const value = inline ?? argv[++i];
    if (value === undefined) throw new SettingError(`flag --${name} needs a value: expected ${setting.kind.expected}`);
    line.settings[keyOf(setting)] = value;
    line.fromFlags.add(keyOf(setting));
  }
  const allowed = options.positionals ?? [];
  if (line.positionals.length > allowed.length && !line.help) {
    throw new SettingError(`unexpected argument ${line.positionals[allowed.length]} for ${options.command}; ${seeHelp}`);
  }
  return line;
}

export interface FlagGroup {
  table: SettingsTable;
  /** The entries of `table` the command takes; all when absent. */
  keys?: readonly string[];
}

/** `--help` of one command: its usage, then every flag with its variable, default and meaning. */
export function formatHelp(options: { usage: string; about: string; flags: readonly FlagGroup[]; footer?: string }): string {
  const lines = [`usage: ${options.usage}`, '', options.about, '', 'flags (each also read from the environment variable beside it):'];
  for (const { table, keys = Object.keys(table) } of options.flags) {
    for (const name of keys) {
      const setting = table[name]!;
      const flag = `--${setting.flag} <${setting.kind.placeholder}>`;
      const env = setting.env ?? '(flag only)';
      lines.push(`  ${flag.padEnd(36)} ${env.padEnd(28)} default: ${describeDefault(setting)}`);
      lines.push(`      ${setting.description}`);
    }
  }
  lines.push(`  ${'--help'.padEnd(36)} this text`, `  ${'--version'.padEnd(36)} print the version`);
  if (options.footer) lines.push('', options.footer);
  return `${lines.join('\n')}\n`;
}

// JSON to YAML for the object detail view, as kubectl -o yaml shows it: block style, keys in the
// object's own order, strings quoted only when YAML would read them as something else.
// managedFields are left out by the caller (see withoutManagedFields).

const PLAIN_UNSAFE_START = /^[-?:,[\]{}#&*!|>'"%@`\s]/;
// YAML 1.1 and 1.2 words and numbers a plain scalar would turn into a boolean, null or number.
const LOOKS_TYPED = /^(?:~|null|Null|NULL|true|True|TRUE|false|False|FALSE|y|Y|yes|Yes|YES|n|N|no|No|NO|on|On|ON|off|Off|OFF|[-+]?(?:\.inf|\.Inf|\.INF)|\.nan|\.NaN|\.NAN|[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)?|[-+]?\.[0-9]+(?:[eE][-+]?[0-9]+)?|0x[0-9a-fA-F_]+|0o[0-7_]+|0b[01_]+|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?|\d{4}-\d\d?-\d\d?(?:[Tt ].*)?)$/;

function needsQuotes(s: string): boolean {
  if (s === '') return true;
  if (PLAIN_UNSAFE_START.test(s) || /\s$/.test(s)) return true;
  if (LOOKS_TYPED.test(s)) return true;
  if (s.includes(': ') || s.includes(' #') || s.endsWith(':')) return true;
  // Control characters, and characters YAML does not allow unescaped.
  return /[\u0000-\u001f\u007f-\u009f\u2028\u2029\ufeff]/.test(s);
}

function quoted(s: string): string {
  // A JSON string is a valid YAML double-quoted scalar.
  return JSON.stringify(s);
}

function scalar(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'number') {
    if (Number.isNaN(value)) return '.nan';
    if (!Number.isFinite(value)) return value > 0 ? '.inf' : '-.inf';
    return String(value);
  }
  const s = String(value);
  return needsQuotes(s) ? quoted(s) : s;
}

function key(k: string): string {
  return needsQuotes(k) || k.includes(':') || k.includes('#') ? quoted(k) : k;
}

/** A multi-line string as a literal block (`|`), when its lines allow it; else undefined. */
function literalBlock(s: string, indent: string): string | undefined {
  if (!s.includes('\n') || /[\u0000-\u0008\u000b-\u001f\u007f\r]/.test(s)) return undefined;
  const lines = s.split('\n');
  const trailing = s.endsWith('\n');
  if (trailing) lines.pop();
  // A block whose first line starts with a space needs an explicit indentation indicator; quote those.
  if (lines.length === 0 || /^\s/.test(lines[0]!) || lines.some((l) => /\s$/.test(l))) return undefined;
  if (trailing && s.endsWith('\n\n')) return undefined;
  const chomp = trailing ? '' : '-';
  return `|${chomp}\n${lines.map((l) => (l === '' ? '' : indent + l)).join('\n')}`;
}

function isCollection(v: unknown): v is Record<string, unknown> | unknown[] {
  return v !== null && typeof v === 'object';
}

function isEmpty(v: Record<string, unknown> | unknown[]): boolean {
  return Array.isArray(v) ? v.length === 0 : Object.keys(v).length === 0;
}

/** A non-empty object or array as block lines at `indent`. Arrays sit at their key's indent, as kubectl writes them. */
function block(value: Record<string, unknown> | unknown[], indent: string, out: string[]): void {
  if (Array.isArray(value)) {
    for (const item of value) {
      if (isCollection(item) && !isEmpty(item)) {
        const inner: string[] = [];
        block(item, `${indent}  `, inner);
        // The item's first line moves up beside its dash: "- name: x", or "- - a" for nested arrays.
        out.push(`${indent}- ${inner[0]!.slice(indent.length + 2)}`, ...inner.slice(1));
      } else {
        out.push(`${indent}- ${inline(item, `${indent}  `)}`);
      }
    }
    return;
  }
  for (const [k, v] of Object.entries(value)) {
    if (v === undefined) continue;
    if (isCollection(v) && !isEmpty(v)) {
      out.push(`${indent}${key(k)}:`);
      block(v, Array.isArray(v) ? indent : `${indent}  `, out);
    } else {
      out.push(`${indent}${key(k)}: ${inline(v, `${indent}  `)}`);
    }
  }
}

function inline(v: unknown, indent: string): string {
  if (Array.isArray(v)) return '[]';
  if (isCollection(v)) return '{}';
  if (typeof v === 'string') return literalBlock(v, indent) ?? scalar(v);
  return scalar(v);
}

export function toYaml(value: unknown): string {
  if (!isCollection(value) || isEmpty(value)) return `${inline(value, '  ')}\n`;
  const out: string[] = [];
  block(value, '', out);
  return `${out.join('\n')}\n`;
}

/** The object without metadata.managedFields, which is noise for a reader. */
export function withoutManagedFields<T extends { metadata?: object }>(obj: T): T {
  if (!obj.metadata || !('managedFields' in obj.metadata)) return obj;
  const { managedFields: _m, ...metadata } = obj.metadata as Record<string, unknown>;
  return { ...obj, metadata } as T;
}

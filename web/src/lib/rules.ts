// Variable rules in Pterodactyl's (Laravel's) syntax, `required|string|max:20`, as the API reads
// them (schemas/src/template/rules.rs): parsed into a list, and checked in the browser where the
// browser can check them the same way. The API stays the authority: a rule the browser cannot
// check exactly (a regex JavaScript reads differently, an `x` flag) is left to the server's dry
// run, never guessed.

export type Rule =
  | { kind: 'required' | 'nullable' | 'string' | 'integer' | 'numeric' | 'boolean' | 'sometimes' }
  | { kind: 'alpha' | 'alpha_dash' | 'alpha_num' | 'url' }
  | { kind: 'max' | 'min' | 'size'; n: number }
  | { kind: 'between'; a: number; b: number }
  | { kind: 'digits'; n: number }
  | { kind: 'digits_between'; a: number; b: number }
  | { kind: 'in' | 'not_in'; list: string[] }
  /** `re` null: JavaScript cannot check it as the server does; the server's dry run will. */
  | { kind: 'regex' | 'not_regex'; source: string; re: RegExp | null; asciiOnly: boolean };

export interface RuleError {
  /** position in the string, from 1 */
  index: number;
  rule: string;
  message: string;
}

export interface RuleSet {
  rules: Rule[];
  /** has `numeric` or `integer`: sizes compare numbers */
  numeric: boolean;
  required: boolean;
  /** rules that do not parse (the API refuses such a Template; shown, never checked) */
  errors: RuleError[];
}

const KNOWN =
  'required, nullable, string, integer, numeric, boolean, alpha, alpha_dash, alpha_num, url, max, min, between, size, digits, digits_between, in, not_in, regex, not_regex, sometimes';

/** Parses `required|string|max:20`; a rule that does not parse goes to `errors`. */
export function parseRules(s: string | undefined | null): RuleSet {
  const rules: Rule[] = [];
  const errors: RuleError[] = [];
  split(s ?? '').forEach((raw, i) => {
    const part = raw.trim();
    if (!part) return;
    try {
      rules.push(parseRule(part));
    } catch (e) {
      errors.push({ index: i + 1, rule: part, message: e instanceof Error ? e.message : String(e) });
    }
  });
  return {
    rules,
    errors,
    numeric: rules.some((r) => r.kind === 'numeric' || r.kind === 'integer'),
    required: rules.some((r) => r.kind === 'required'),
  };
}

/**
 * The first rule `value` breaks, as the API words it ("must be at most 20 characters"), or null
 * (also when the only rule broken is one the browser leaves to the server).
 */
export function check(value: string, rules: RuleSet | string | undefined | null): string | null {
  const set = typeof rules === 'object' && rules !== null ? rules : parseRules(rules);
  const blank = value.trim() === '';
  for (const rule of set.rules) {
    if (blank) {
      if (rule.kind === 'required') return 'is required';
      continue;
    }
    const m = checkOne(set, rule, value);
    if (m) return m;
  }
  return null;
}

/** Whether `value` would be one of the `in:` list, as PHP compares (numeric strings as numbers). */
export function looseEq(a: string, b: string): boolean {
  if (a === b) return true;
  const x = phpNumber(a);
  const y = phpNumber(b);
  return x !== null && y !== null && x === y;
}

function sizeOf(set: RuleSet, value: string): number {
  if (set.numeric) {
    const n = phpNumber(value);
    if (n !== null) return n;
  }
  return [...value].length;
}

function unit(set: RuleSet, value: string): string {
  return set.numeric && phpNumber(value) !== null ? '' : ' characters';
}

const ALPHA = /^[\p{Alphabetic}\u0300-\u036F\u1AB0-\u1AFF\u1DC0-\u1DFF\u20D0-\u20FF\uFE20-\uFE2F]*$/u;
const ALPHA_NUM = /^[\p{Alphabetic}\p{N}\u0300-\u036F\u1AB0-\u1AFF\u1DC0-\u1DFF\u20D0-\u20FF\uFE20-\uFE2F]*$/u;
const ALPHA_DASH = /^[\p{Alphabetic}\p{N}\u0300-\u036F\u1AB0-\u1AFF\u1DC0-\u1DFF\u20D0-\u20FF\uFE20-\uFE2F_-]*$/u;

function checkOne(set: RuleSet, rule: Rule, value: string): string | null {
  const size = () => sizeOf(set, value);
  const u = () => unit(set, value);
  switch (rule.kind) {
    case 'required':
    case 'nullable':
    case 'string':
    case 'sometimes':
      return null;
    case 'integer':
      return phpInt(value) ? null : 'must be an integer';
    case 'numeric':
      return phpNumber(value) !== null ? null : 'must be a number';
    case 'boolean':
      return value === '0' || value === '1' ? null : 'must be 0 or 1';
    case 'alpha':
      return ALPHA.test(value) ? null : 'may only contain letters';
    case 'alpha_dash':
      return ALPHA_DASH.test(value) ? null : 'may only contain letters, numbers, dashes and underscores';
    case 'alpha_num':
      return ALPHA_NUM.test(value) ? null : 'may only contain letters and numbers';
    case 'url':
      return isUrl(value) ? null : 'must be a URL (scheme://host/…)';
    case 'max':
      return size() <= rule.n ? null : `must be at most ${num(rule.n)}${u()}`;
    case 'min':
      return size() >= rule.n ? null : `must be at least ${num(rule.n)}${u()}`;
    case 'size':
      return size() === rule.n ? null : `must be exactly ${num(rule.n)}${u()}`;
    case 'between': {
      const n = size();
      return n >= rule.a && n <= rule.b ? null : `must be between ${num(rule.a)} and ${num(rule.b)}${u()}`;
    }
    case 'digits':
      // the server counts bytes; digits are ASCII, so bytes = characters here
      return allDigits(value) && value.length === rule.n ? null : `must be ${rule.n} digits`;
    case 'digits_between':
      return allDigits(value) && value.length >= rule.a && value.length <= rule.b
        ? null
        : `must be between ${rule.a} and ${rule.b} digits`;
    case 'in':
      return rule.list.some((x) => looseEq(x, value)) ? null : `must be one of: ${rule.list.join(', ')}`;
    case 'not_in':
      return rule.list.some((x) => looseEq(x, value)) ? `must not be one of: ${rule.list.join(', ')}` : null;
    case 'regex':
    case 'not_regex': {
      if (!rule.re) return null; // the server's dry run checks it
      // without PCRE's `u` flag the server matches bytes: only ASCII values read the same
      if (rule.asciiOnly && !/^[\x00-\x7f]*$/.test(value)) return null;
      const hit = rule.re.test(value);
      if (rule.kind === 'regex') return hit ? null : `must match ${rule.source}`;
      return hit ? `must not match ${rule.source}` : null;
    }
  }
}

function num(n: number): string {
  return String(n);
}

function allDigits(s: string): boolean {
  return /^[0-9]+$/.test(s);
}

/** PHP's whitespace for numeric strings. */
function phpTrim(s: string): string {
  return s.replace(/^[ \t\n\r\v\f]+|[ \t\n\r\v\f]+$/g, '');
}

/** `filter_var($v, FILTER_VALIDATE_INT)` (64-bit). */
export function phpInt(s: string): boolean {
  const t = phpTrim(s);
  const m = /^([+-]?)([0-9]+)$/.exec(t);
  if (!m) return false;
  const digits = m[2];
  if (digits.length > 1 && digits.startsWith('0')) return false;
  const big = BigInt((m[1] === '-' ? '-' : '') + digits);
  return big >= -(2n ** 63n) && big <= 2n ** 63n - 1n;
}

/** PHP's `is_numeric`, and the number; null when it is not one. */
export function phpNumber(s: string): number | null {
  const t = phpTrim(s);
  if (!/^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$/.test(t)) return null;
  const n = Number(t);
  return Number.isNaN(n) ? null : n;
}

function isUrl(s: string): boolean {
  const at = s.indexOf('://');
  if (at < 0) return false;
  const scheme = s.slice(0, at);
  const rest = s.slice(at + 3);
  const schemeOk = /^[A-Za-z][A-Za-z0-9+.-]*$/.test(scheme);
  let hostEnd = rest.search(/[/?#]/);
  if (hostEnd < 0) hostEnd = rest.length;
  const authority = rest.slice(0, hostEnd);
  const atSign = authority.lastIndexOf('@');
  let host = atSign >= 0 ? authority.slice(atSign + 1) : authority;
  const colon = host.lastIndexOf(':');
  if (colon >= 0) {
    const h = host.slice(0, colon);
    const port = host.slice(colon + 1);
    if (!h.endsWith(']') || host.startsWith('[')) {
      if (port !== '' && !/^[0-9]+$/.test(port)) return false;
      host = h;
    }
  }
  // eslint-disable-next-line no-control-regex
  return schemeOk && host !== '' && !/[\s\x00-\x1f\x7f-\x9f]/u.test(s);
}

/** Splits at `|`, except inside a `regex:`/`not_regex:` pattern's delimiters. */
export function split(s: string): string[] {
  const out: string[] = [];
  let start = 0;
  let i = 0;
  while (i < s.length) {
    if (i === start) {
      const rest = s.slice(i);
      const lower = rest.trimStart();
      const skipped = rest.length - lower.length;
      for (const prefix of ['regex:', 'not_regex:']) {
        if (lower.slice(0, prefix.length).toLowerCase() === prefix) {
          const patStart = i + skipped + prefix.length;
          const end = delimitedEnd(s.slice(patStart));
          if (end !== null) i = patStart + end;
          break;
        }
      }
    }
    if (i < s.length && s[i] === '|') {
      out.push(s.slice(start, i));
      start = i + 1;
    }
    i += 1;
  }
  out.push(s.slice(start));
  return out;
}

/** Just past the closing delimiter of a PCRE pattern `/…/` (or `#…#`, `(…)`, …), or null. */
function delimitedEnd(p: string): number | null {
  const chars = [...p];
  if (chars.length === 0) return null;
  const open = chars[0];
  const pairs: Record<string, string> = { '(': ')', '{': '}', '[': ']', '<': '>' };
  let close = pairs[open];
  if (!close) {
    if (/^[\p{Alphabetic}\p{N}\s\\]$/u.test(open)) return null;
    close = open;
  }
  let escaped = false;
  let depth = 0;
  let pos = open.length;
  for (const c of chars.slice(1)) {
    const at = pos;
    pos += c.length;
    if (escaped) {
      escaped = false;
      continue;
    }
    if (c === '\\') escaped = true;
    else if (c === close && depth === 0) return at + c.length;
    else if (c === close) depth -= 1;
    else if (c === open && open !== close) depth += 1;
  }
  return null;
}

function parseRule(part: string): Rule {
  const colon = part.indexOf(':');
  const name = (colon >= 0 ? part.slice(0, colon) : part).trim().toLowerCase();
  const param = colon >= 0 ? part.slice(colon + 1) : undefined;
  const none = <R extends Rule>(r: R): R => {
    if (param !== undefined) throw new Error(`${name} takes no parameter`);
    return r;
  };
  const params = () => (param === undefined ? [] : param.split(',').map((x) => x.trim()));
  const number = (s: string) => {
    const n = phpNumber(s);
    if (n === null || !Number.isFinite(n)) throw new Error(`${JSON.stringify(s)} is not a number`);
    return n;
  };
  const count = (s: string) => {
    if (!/^\+?[0-9]+$/.test(s.trim())) throw new Error(`${JSON.stringify(s)} is not a count`);
    return Number(s.trim());
  };
  const one = () => {
    const p = params();
    if (p.length !== 1 || !p[0]) throw new Error(`${name} takes one parameter: ${name}:N`);
    return p[0];
  };
  const two = (): [string, string] => {
    const p = params();
    if (p.length !== 2 || !p[0] || !p[1]) throw new Error(`${name} takes two parameters: ${name}:A,B`);
    return [p[0], p[1]];
  };
  switch (name) {
    case 'required':
    case 'nullable':
    case 'string':
    case 'numeric':
    case 'sometimes':
    case 'alpha':
    case 'alpha_dash':
    case 'alpha_num':
      return none({ kind: name });
    case 'integer':
    case 'int':
      return none({ kind: 'integer' });
    case 'boolean':
    case 'bool':
      return none({ kind: 'boolean' });
    case 'url':
    case 'active_url':
      return none({ kind: 'url' });
    case 'max':
    case 'min':
    case 'size':
      return { kind: name, n: number(one()) };
    case 'between': {
      const [a, b] = two().map(number);
      if (a > b) throw new Error(`${num(a)} is greater than ${num(b)}`);
      return { kind: 'between', a, b };
    }
    case 'digits':
      return { kind: 'digits', n: count(one()) };
    case 'digits_between': {
      const [a, b] = two().map(count);
      if (a > b) throw new Error(`${a} is greater than ${b}`);
      return { kind: 'digits_between', a, b };
    }
    case 'in':
    case 'not_in': {
      if (param === undefined) throw new Error(`${name} takes a list: ${name}:a,b`);
      return { kind: name, list: params().map((x) => x.replace(/^"+|"+$/g, '')) };
    }
    case 'regex':
    case 'not_regex': {
      const src = param?.trim();
      if (!src) throw new Error(`${name} takes a pattern: ${name}:/…/`);
      return { kind: name, source: src, ...pcre(src) };
    }
    default:
      throw new Error(`unknown rule ${JSON.stringify(name)} (known: ${KNOWN})`);
  }
}

/**
 * A PCRE pattern with delimiters and flags as a JavaScript RegExp, when JavaScript reads it as
 * the server does: `re` null otherwise (left to the server). Throws when it has no delimiters or
 * an unknown flag (the server refuses those too).
 */
export function pcre(src: string): { re: RegExp | null; asciiOnly: boolean } {
  const end = delimitedEnd(src);
  if (end === null) throw new Error('a pattern is written between delimiters, e.g. /^[a-z]+$/');
  const chars = [...src.slice(0, end)];
  const body = chars.slice(1, -1).join('');
  const flags = src.slice(end);
  let js = '';
  let unicode = false;
  let verbose = false;
  for (const f of flags) {
    if (f === 'i' || f === 'm' || f === 's') js += js.includes(f) ? '' : f;
    else if (f === 'u') unicode = true;
    else if (f === 'x') verbose = true;
    else if (f === 'D') continue;
    else throw new Error(`unsupported flag ${JSON.stringify(f)} (supported: i m s x u D)`);
  }
  // `x` (free spacing) has no JavaScript form; with `u` the server's \w, \d, \s, \b are
  // Unicode, JavaScript's stay ASCII
  if (verbose || (unicode && /\\[wWdDsSbB]/.test(body))) return { re: null, asciiOnly: false };
  try {
    // the `u` flag makes JavaScript refuse escapes PCRE means otherwise (\A, \z, \h …)
    return { re: new RegExp(body, js + 'u'), asciiOnly: !unicode };
  } catch {
    return { re: null, asciiOnly: false };
  }
}

/** The `in:` list of a rule set, if it has one. */
export function inList(set: RuleSet): string[] | undefined {
  for (const r of set.rules) if (r.kind === 'in') return r.list;
  return undefined;
}

/** Whether the set has a rule of this kind. */
export function has(set: RuleSet, kind: Rule['kind']): boolean {
  return set.rules.some((r) => r.kind === kind);
}

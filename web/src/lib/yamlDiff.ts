// What the YAML editor shows and compares: an object without what the server owns or changes on
// every write, in a stable key order, as YAML; line diffs and the dotted paths that differ.

import { diffLines } from 'diff';
import { LineCounter, parseDocument, stringify } from 'yaml';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/**
 * Fields of `metadata` the server sets (or rewrites on every write), and the finalizers that
 * controllers add and remove: applied from the editor, a stale list would claim them for the
 * panel and could put back one a controller just removed (holding a deletion forever).
 */
const SERVER_META = [
  'managedFields',
  'resourceVersion',
  'generation',
  'uid',
  'creationTimestamp',
  'deletionTimestamp',
  'finalizers',
  'ownerReferences',
];
const TOP_ORDER = ['apiVersion', 'kind', 'metadata', 'spec'];
const META_ORDER = ['name', 'namespace', 'labels', 'annotations'];

function ordered(keys: string[], first: string[]): string[] {
  const head = first.filter((k) => keys.includes(k));
  const rest = keys.filter((k) => !first.includes(k)).sort();
  return [...head, ...rest];
}

/** A deep copy with every map's keys sorted (lists keep their order). */
function sortDeep(v: unknown): Json {
  if (Array.isArray(v)) return v.map(sortDeep);
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    const out: Record<string, Json> = {};
    for (const k of Object.keys(o).sort()) if (o[k] !== undefined) out[k] = sortDeep(o[k]);
    return out;
  }
  return (v ?? null) as Json;
}

/**
 * A copy of `obj` without `status` and the server's metadata (managedFields, resourceVersion,
 * generation, uid, creationTimestamp, deletionTimestamp, finalizers, ownerReferences), keys in a stable order: apiVersion,
 * kind, metadata (name, namespace, labels, annotations, then the rest), spec, then the rest;
 * everything below sorted by key.
 */
export function normalise<T = Record<string, unknown>>(obj: unknown): T {
  if (!obj || typeof obj !== 'object' || Array.isArray(obj)) return sortDeep(obj) as T;
  const src = obj as Record<string, unknown>;
  const out: Record<string, Json> = {};
  for (const k of ordered(Object.keys(src), TOP_ORDER)) {
    if (k === 'status' || src[k] === undefined) continue;
    if (k === 'metadata' && src.metadata && typeof src.metadata === 'object' && !Array.isArray(src.metadata)) {
      const m = src.metadata as Record<string, unknown>;
      const meta: Record<string, Json> = {};
      for (const mk of ordered(Object.keys(m), META_ORDER)) {
        if (SERVER_META.includes(mk) || m[mk] === undefined) continue;
        meta[mk] = sortDeep(m[mk]);
      }
      out.metadata = meta;
    } else {
      out[k] = sortDeep(src[k]);
    }
  }
  return out as T;
}

/** YAML of `obj` as it is ordered (use `normalise` first for a stable text); no line folding. */
export function toYaml(obj: unknown): string {
  if (obj === undefined) return '';
  return stringify(obj, { indent: 2, lineWidth: 0, minContentWidth: 0, aliasDuplicateObjects: false });
}

export interface DiffLine {
  /** '+' added, '-' removed, ' ' unchanged */
  op: '+' | '-' | ' ';
  text: string;
}

export interface LineDiff {
  lines: DiffLine[];
  added: number;
  removed: number;
}

/** The line diff of two texts: every line with its op, and how many were added and removed. */
export function lineDiff(a: string, b: string): LineDiff {
  const lines: DiffLine[] = [];
  let added = 0;
  let removed = 0;
  for (const part of diffLines(a, b)) {
    const op = part.added ? '+' : part.removed ? '-' : ' ';
    const texts = part.value.replace(/\n$/, '').split('\n');
    for (const text of texts) lines.push({ op, text });
    if (part.added) added += texts.length;
    if (part.removed) removed += texts.length;
  }
  return { lines, added, removed };
}

/** Only the changed lines with `context` unchanged lines around them; `…` between hunks. */
export function changedLines(d: LineDiff, context = 1): DiffLine[] {
  const keep = new Array<boolean>(d.lines.length).fill(false);
  d.lines.forEach((l, i) => {
    if (l.op === ' ') return;
    for (let j = Math.max(0, i - context); j <= Math.min(d.lines.length - 1, i + context); j++) keep[j] = true;
  });
  const out: DiffLine[] = [];
  let gap = false;
  d.lines.forEach((l, i) => {
    if (keep[i]) {
      if (gap && out.length) out.push({ op: ' ', text: '…' });
      gap = false;
      out.push(l);
    } else gap = true;
  });
  return out;
}

function isMap(v: unknown): v is Record<string, unknown> {
  return !!v && typeof v === 'object' && !Array.isArray(v);
}

/**
 * The dotted paths where `a` and `b` differ (maps by key, lists by index as `name[0]`), sorted.
 * A path is as deep as both sides are maps or lists; an added or removed subtree is one path.
 */
export function changedPaths(a: unknown, b: unknown): string[] {
  const out: string[] = [];
  const walk = (x: unknown, y: unknown, path: string) => {
    if (isMap(x) && isMap(y)) {
      const keys = new Set([...Object.keys(x), ...Object.keys(y)]);
      for (const k of keys) {
        if (x[k] === undefined && y[k] === undefined) continue;
        walk(x[k], y[k], path ? `${path}.${k}` : k);
      }
      return;
    }
    if (Array.isArray(x) && Array.isArray(y)) {
      for (let i = 0; i < Math.max(x.length, y.length); i++) walk(x[i], y[i], `${path}[${i}]`);
      return;
    }
    if (JSON.stringify(sortDeep(x)) !== JSON.stringify(sortDeep(y))) out.push(path);
  };
  walk(a, b, '');
  return out.sort();
}

/**
 * One line for people: "2 lines changed: spec.variables.MOTD" (normalised objects compared;
 * at most `max` paths named), or "No changes".
 */
export function diffSummary(before: unknown, after: unknown, max = 5): string {
  const a = before === undefined ? undefined : normalise(before);
  const b = after === undefined ? undefined : normalise(after);
  const d = lineDiff(toYaml(a), toYaml(b));
  const n = d.added + d.removed;
  if (n === 0) return 'No changes';
  const paths = a === undefined ? [] : changedPaths(a, b);
  const lines = `${n} line${n === 1 ? '' : 's'} changed`;
  if (!paths.length) return lines;
  const named = paths.slice(0, max).join(', ');
  const more = paths.length > max ? ` and ${paths.length - max} more` : '';
  return `${lines}: ${named}${more}`;
}

/**
 * The keys of a field path as the API writes them: `spec.ports[1].containerPort` →
 * ['spec','ports',1,'containerPort'], `spec.variables[MOTD]` → ['spec','variables','MOTD'].
 */
export function pathKeys(path: string): (string | number)[] {
  const out: (string | number)[] = [];
  const re = /([^.[\]]+)|\[([^\]]*)\]/g;
  for (let m = re.exec(path); m; m = re.exec(path)) {
    if (m[1] !== undefined) out.push(m[1]);
    else out.push(/^\d+$/.test(m[2]) ? Number(m[2]) : m[2]);
  }
  return out;
}

/**
 * The 1-based line and column of `path` in a YAML text (the nearest existing parent's when the
 * field itself is absent), or undefined when the text does not parse to a map.
 */
export function locate(text: string, path: string): { line: number; column: number } | undefined {
  const counter = new LineCounter();
  const doc = parseDocument(text, { lineCounter: counter, keepSourceTokens: false });
  if (!doc.contents) return undefined;
  const keys = pathKeys(path);
  for (let n = keys.length; n >= 1; n--) {
    const parent = n === 1 ? doc.contents : doc.getIn(keys.slice(0, n - 1), true);
    const last = keys[n - 1];
    const items = (parent as { items?: unknown[] } | undefined)?.items;
    if (!items) continue;
    let node: { range?: [number, number, number] } | undefined;
    if (typeof last === 'number') node = items[last] as typeof node;
    else {
      const pair = items.find(
        (p) => ((p as { key?: { value?: unknown } }).key?.value ?? undefined) === last,
      ) as { key?: { range?: [number, number, number] } } | undefined;
      node = pair?.key;
    }
    if (node?.range) {
      const pos = counter.linePos(node.range[0]);
      return { line: pos.line, column: pos.col };
    }
  }
  return undefined;
}

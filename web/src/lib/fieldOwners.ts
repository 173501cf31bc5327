// Who owns which field, from `metadata.managedFields` (apply.rs): each entry's `fieldsV1` is a
// tree of `f:KEY` maps whose leaves (`{}`) are the owned fields; lists and `metadata.finalizers`
// / `metadata.ownerReferences` are owned whole. Paths are the keys joined with dots, as the
// API's conflict causes name them (`spec.variables.MOTD`).

import type { KObject, ManagedField } from '../api/types';

/** The owned fields of one managedFields entry, as key lists. */
export function ownedKeyPaths(entry: Pick<ManagedField, 'fieldsV1'>): string[][] {
  const out: string[][] = [];
  const walk = (v: unknown, path: string[]) => {
    const children =
      v && typeof v === 'object' && !Array.isArray(v)
        ? Object.entries(v as Record<string, unknown>).filter(([k]) => k.startsWith('f:'))
        : [];
    if (!children.length) {
      if (path.length) out.push(path);
      return;
    }
    for (const [k, c] of children) walk(c, [...path, k.slice(2)]);
  };
  walk(entry.fieldsV1, []);
  return out;
}

/** The owned fields of one managedFields entry as dotted paths, sorted. */
export function ownedPaths(entry: Pick<ManagedField, 'fieldsV1'>): string[] {
  return ownedKeyPaths(entry)
    .map((p) => p.join('.'))
    .sort();
}

/** A path as ownership sees it: list indexes and what follows dropped (lists are owned whole),
 * `[KEY]` map keys written with dots (`spec.variables[MOTD]` → `spec.variables.MOTD`). */
export function ownershipPath(path: string): string {
  const cut = path.search(/\[\d+\]/);
  const head = cut >= 0 ? path.slice(0, cut) : path;
  return head.replace(/\[([^\]]*)\]/g, '.$1').replace(/^\./, '');
}

/** Whether `long` is `short` or a field under it (dot boundaries; keys may hold dots). */
function under(long: string, short: string): boolean {
  return long === short || long.startsWith(`${short}.`);
}

/**
 * The managers owning `path` or a parent of it (`spec.ports[0].containerPort` is owned with
 * `spec.ports`); with `withChildren`, also those owning a field under it. Each manager once,
 * in managedFields order.
 */
export function ownersOf(obj: Pick<KObject, 'metadata'> | undefined, path: string, withChildren = false): string[] {
  const want = ownershipPath(path);
  const out: string[] = [];
  for (const e of obj?.metadata?.managedFields ?? []) {
    const hit = ownedPaths(e).some((p) => under(want, p) || (withChildren && under(p, want)));
    if (hit && !out.includes(e.manager)) out.push(e.manager);
  }
  return out;
}

/** The managedFields entry written last (by `time`), or undefined. */
export function latestEntry(obj: Pick<KObject, 'metadata'> | undefined): ManagedField | undefined {
  let best: ManagedField | undefined;
  for (const e of obj?.metadata?.managedFields ?? []) {
    if (!best || Date.parse(e.time ?? '') > Date.parse(best.time ?? '') || (!best.time && e.time)) best = e;
  }
  return best;
}

/**
 * Who changed `paths` in `obj` (the owners of those fields, else the entry written last), for
 * "changed on the server by …".
 */
export function changedBy(obj: Pick<KObject, 'metadata'> | undefined, paths: string[]): string[] {
  const out: string[] = [];
  for (const p of paths) for (const m of ownersOf(obj, p, true)) if (!out.includes(m)) out.push(m);
  if (out.length) return out;
  const last = latestEntry(obj);
  return last ? [last.manager] : [];
}

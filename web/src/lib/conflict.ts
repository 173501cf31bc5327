// The 409 Conflict of a server-side apply, read into (field, manager) pairs. apply.rs writes
// each cause as {field: "spec.variables.MOTD", message: 'conflict with "catalystctl"'} (the
// manager in Rust's Debug quoting) and the message as
// 'Apply failed with N conflict(s): spec.x (conflict with "a"), spec.y (conflict with "b"). …'.

import type { Status } from '../api/client';

export interface FieldConflict {
  field: string;
  manager: string;
}

const QUOTED = '"((?:[^"\\\\]|\\\\.)*)"';
const CAUSE = new RegExp(`conflict with ${QUOTED}`);
const LISTED = new RegExp(`(?:^|, )([^,()\\s][^,()]*?) \\(conflict with ${QUOTED}\\)`, 'g');

/** Undoes Rust's `{:?}` string escaping (\" \\ \n \t \r \0 \' \u{…}). */
export function unquoteRust(s: string): string {
  return s.replace(/\\(u\{([0-9a-fA-F]+)\}|.)/g, (_, c: string, hex?: string) => {
    if (hex) return String.fromCodePoint(parseInt(hex, 16));
    return ({ n: '\n', t: '\t', r: '\r', '0': '\0' } as Record<string, string>)[c] ?? c;
  });
}

/** The manager named by a cause message `conflict with "NAME"`, or undefined. */
export function managerOf(message: string | undefined): string | undefined {
  const m = message ? CAUSE.exec(message) : null;
  return m ? unquoteRust(m[1]) : undefined;
}

/**
 * The field conflicts of an apply's 409 Status (from details.causes, else from the message);
 * [] when the Status is not an apply conflict (another 409, or not a conflict at all).
 */
export function parseConflict(status: Status | undefined | null): FieldConflict[] {
  if (!status || status.reason !== 'Conflict' || (status.code !== undefined && status.code !== 409)) return [];
  const out: FieldConflict[] = [];
  for (const c of status.details?.causes ?? []) {
    const manager = managerOf(c.message);
    if (c.field && manager !== undefined) out.push({ field: c.field, manager });
  }
  if (out.length) return out;
  const msg = status.message ?? '';
  const at = msg.indexOf('conflict(s): ');
  if (at < 0) return [];
  const list = msg.slice(at + 'conflict(s): '.length);
  LISTED.lastIndex = 0;
  for (let m = LISTED.exec(list); m; m = LISTED.exec(list)) out.push({ field: m[1], manager: unquoteRust(m[2]) });
  return out;
}

/** The conflicts grouped by field (a field may conflict with several managers), in order. */
export function byField(conflicts: FieldConflict[]): { field: string; managers: string[] }[] {
  const m = new Map<string, string[]>();
  for (const c of conflicts) {
    const l = m.get(c.field) ?? [];
    if (!l.includes(c.manager)) l.push(c.manager);
    m.set(c.field, l);
  }
  return [...m].map(([field, managers]) => ({ field, managers }));
}

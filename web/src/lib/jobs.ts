// Pure helpers of the backups and schedules tabs: generated names, which Restores concern a
// server, list fields typed one per line.

import type { KObject } from '../api/types';

/** `<prefix>-YYYYMMDD-HHMMSS` (UTC), cut to a DNS label (63 characters). */
export function stampedName(prefix: string, now = new Date()): string {
  const stamp = now.toISOString().slice(0, 19).replace(/[-:]/g, '').replace('T', '-');
  const base = prefix
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .slice(0, 63 - stamp.length - 1)
    .replace(/^-+|-+$/g, '');
  return base ? `${base}-${stamp}` : stamp;
}

/** Why `name` is not a DNS label (what object names are), or undefined. */
export function nameProblem(name: string): string | undefined {
  if (!name) return 'a name is needed';
  if (name.length > 63) return 'at most 63 characters';
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(name))
    return "lowercase letters, digits and '-', starting and ending with a letter or digit";
  return undefined;
}

/** Non-empty trimmed lines of a textarea. */
export function lines(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
}

export interface BackupLike extends KObject {
  spec?: { gameServer?: string; [k: string]: unknown };
}
export interface RestoreLike extends KObject {
  spec?: { backup?: string; gameServer?: string | null; truncate?: boolean; [k: string]: unknown };
}

/** The server a Restore writes into: its `spec.gameServer`, else the server its Backup was made of. */
export function restoreTarget(r: RestoreLike, backups: Map<string, BackupLike>): string | undefined {
  if (r.spec?.gameServer) return r.spec.gameServer;
  return backups.get(r.spec?.backup ?? '')?.spec?.gameServer;
}

/** Restores into `server`, newest first (`backups` by name, all of the namespace). */
export function restoresInto<R extends RestoreLike>(restores: R[], backups: Map<string, BackupLike>, server: string): R[] {
  return restores
    .filter((r) => restoreTarget(r, backups) === server)
    .sort((a, b) => (b.metadata.creationTimestamp ?? '').localeCompare(a.metadata.creationTimestamp ?? ''));
}

/** Newest first by creation time, then by name. */
export function newestFirst<T extends KObject>(items: T[]): T[] {
  return [...items].sort(
    (a, b) =>
      (b.metadata.creationTimestamp ?? '').localeCompare(a.metadata.creationTimestamp ?? '') ||
      a.metadata.name.localeCompare(b.metadata.name),
  );
}

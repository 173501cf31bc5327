// The objects of one game server among a namespace's (Backups, Schedules: spec.gameServer).

import type { KObject } from '../api/types';

export type ServerItem = KObject & { spec?: { gameServer?: string | null } };

/** The items whose spec.gameServer is `server`, in the order given. */
export function ofServer<T extends ServerItem>(items: T[], server: string): T[] {
  return items.filter((x) => x.spec?.gameServer === server);
}

/** A copy sorted by name. */
export function byName<T extends KObject>(items: T[]): T[] {
  return [...items].sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
}

// A game server's tab over a namespaced kind whose objects name their server (Backups,
// Schedules): what the user may do with the kind, and the live list narrowed to this server.

import { useMemo } from 'react';

import { useCan, useLiveList } from '../api/hooks';
import type { GameServer } from '../api/types';
import { ofServer, type ServerItem } from '../lib/serverItems';

/** `order` must be a stable function (module level), e.g. byName or newestFirst. */
export function useServerItems<T extends ServerItem>(plural: string, gs: GameServer, order: (items: T[]) => T[]) {
  const ns = gs.metadata.namespace ?? 'default';
  const server = gs.metadata.name;
  const canList = useCan('list', plural, ns);
  const canCreate = useCan('create', plural, ns);
  const canPatch = useCan('patch', plural, ns);
  const canDelete = useCan('delete', plural, ns);
  const list = useLiveList<T>(plural, ns, {}, canList === true);
  const mine = useMemo(() => order(ofServer(list.items, server)), [list.items, server, order]);
  return { ns, server, canList, canCreate, canPatch, canDelete, list, mine };
}

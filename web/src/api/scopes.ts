// Which GameServers the signed-in user may see, from the API's own answer (`GET
// /auth/v1/rules`): everything when they may list game servers everywhere, else each namespace
// they may list in, else each server granted to them by name (a subuser's RoleBinding with
// `resourceNames`), watched one by one with a `metadata.name` field selector.

import { useQuery } from '@tanstack/react-query';

import { api } from './client';

export interface Rule {
  namespace?: string | null;
  apiGroups?: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}

export interface RulesAnswer {
  rules: Rule[];
}

/** One list to watch: a namespace (undefined: all) and maybe one name. */
export interface Scope {
  namespace?: string;
  name?: string;
}

function covers(list: string[], want: string): boolean {
  return list.includes('*') || list.includes(want);
}

/**
 * The lists that show every GameServer `rules` let one read (get and list/watch), without
 * overlap: the whole cluster, else namespaces, else single servers.
 */
export function gameServerScopes(rules: Rule[]): Scope[] {
  const reads = rules.filter((r) => covers(r.resources, 'gameservers'));
  const lists = reads.filter((r) => !r.resourceNames?.length && covers(r.verbs, 'list') && covers(r.verbs, 'watch'));
  if (lists.some((r) => !r.namespace)) return [{}];
  const namespaces = new Set(lists.map((r) => r.namespace as string));
  const out: Scope[] = [...namespaces].sort().map((namespace) => ({ namespace }));
  const named = new Set<string>();
  for (const r of reads) {
    if (!r.resourceNames?.length || !covers(r.verbs, 'get') || !r.namespace) continue;
    if (namespaces.has(r.namespace)) continue;
    for (const name of r.resourceNames) {
      const k = `${r.namespace}/${name}`;
      if (named.has(k)) continue;
      named.add(k);
      out.push({ namespace: r.namespace, name });
    }
  }
  return out;
}

export function useRules() {
  return useQuery({
    queryKey: ['rules'],
    queryFn: () => api<RulesAnswer>('/auth/v1/rules'),
    staleTime: 60_000,
  });
}

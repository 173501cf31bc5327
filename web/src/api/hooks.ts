// React hooks over the API: lists kept live by one shared watch per (path, selectors), held in
// react-query's cache; single objects read from those lists or fetched; permission answers from
// the API's access review, cached.

import { useEffect, useMemo } from 'react';
import { QueryClient, useQueries, useQuery, useQueryClient } from '@tanstack/react-query';

import { api, ApiError, resourcePath } from './client';
import type { KObject } from './types';
import { applyEvents, followList, keyOf, listOnce, type ListQuery, type ListState, type WatchEvent } from './watch';

export function listKey(path: string, q: ListQuery = {}) {
  return ['list', path, q.labelSelector ?? '', q.fieldSelector ?? ''] as const;
}

interface Follower {
  users: number;
  abort: AbortController;
  stop?: ReturnType<typeof setTimeout>;
}
const followers = new Map<string, Follower>();

/** Runs `f` once per animation frame at most (in a hidden tab or a test: a 50 ms timer). */
function batcher(f: () => void): () => void {
  let queued = false;
  return () => {
    if (queued) return;
    queued = true;
    const run = () => {
      queued = false;
      f();
    };
    if (typeof requestAnimationFrame === 'function' && !document.hidden) requestAnimationFrame(run);
    else setTimeout(run, 50);
  };
}

/** Starts the shared watch of `key` (or takes a share of it); the returned function gives it back. */
function follow<T extends KObject>(qc: QueryClient, path: string, q: ListQuery, from: string): () => void {
  const key = listKey(path, q);
  const id = JSON.stringify(key);
  let f = followers.get(id);
  if (f) {
    f.users += 1;
    if (f.stop) clearTimeout(f.stop);
    f.stop = undefined;
  } else {
    const abort = new AbortController();
    f = { users: 1, abort };
    followers.set(id, f);
    let pending: WatchEvent<T>[] = [];
    const flush = batcher(() => {
      const events = pending;
      pending = [];
      qc.setQueryData<ListState<T>>(key, (old) => (old ? applyEvents(old, events) : old));
    });
    void followList<T>(
      path,
      q,
      {
        onList: (state) => {
          pending = [];
          qc.setQueryData(key, state);
        },
        onEvents: (events) => {
          pending.push(...events);
          flush();
        },
      },
      abort.signal,
      from,
    );
  }
  const mine = f;
  return () => {
    mine.users -= 1;
    if (mine.users === 0) {
      // a page change that shows the same list again keeps the watch
      mine.stop = setTimeout(() => {
        mine.abort.abort();
        followers.delete(id);
        qc.removeQueries({ queryKey: key, exact: true });
      }, 5000);
    }
  };
}

export interface LiveList<T extends KObject> {
  items: T[];
  byKey: Map<string, T>;
  isLoading: boolean;
  error: unknown;
}

/**
 * The objects of `plural` (in `namespace`, or all namespaces / a cluster kind when undefined),
 * kept current by a watch while any component shows them.
 */
export function useLiveList<T extends KObject = KObject>(
  plural: string,
  namespace?: string,
  q: ListQuery = {},
  enabled = true,
): LiveList<T> {
  const qc = useQueryClient();
  const path = resourcePath(plural, namespace);
  const key = listKey(path, q);
  const query = useQuery({
    queryKey: key,
    queryFn: ({ signal }) => listOnce<T>(path, q, signal),
    staleTime: Infinity,
    gcTime: 5000,
    enabled,
    retry: (n, e) => !(e instanceof ApiError && (e.code === 403 || e.code === 401)) && n < 3,
  });
  const rv = query.data?.resourceVersion;
  const id = JSON.stringify(key);
  useEffect(() => {
    if (!enabled || rv === undefined) return;
    return follow<T>(qc, path, q, rv);
    // the watch starts once per list; later revisions come from the watch itself
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [id, enabled, rv === undefined]);
  const byKey = query.data?.items ?? EMPTY;
  const items = useMemo(() => Array.from(byKey.values()) as T[], [byKey]);
  return { items, byKey: byKey as Map<string, T>, isLoading: query.isLoading, error: query.error };
}

const EMPTY = new Map<string, never>();

export interface ListScope {
  namespace?: string;
  /** one object, by a `metadata.name` field selector */
  name?: string;
  labelSelector?: string;
}

/** Several live lists of one kind merged (the dashboard's scopes); no key appears twice. */
export function useLiveLists<T extends KObject = KObject>(plural: string, scopes: ListScope[]): LiveList<T> {
  const qc = useQueryClient();
  const specs = scopes.map((s) => {
    const path = resourcePath(plural, s.namespace);
    const q: ListQuery = {};
    if (s.labelSelector) q.labelSelector = s.labelSelector;
    if (s.name) q.fieldSelector = `metadata.name=${s.name}`;
    return { path, q, key: listKey(path, q) };
  });
  const results = useQueries({
    queries: specs.map(({ path, q, key }) => ({
      queryKey: key,
      queryFn: ({ signal }: { signal: AbortSignal }) => listOnce<T>(path, q, signal),
      staleTime: Infinity,
      gcTime: 5000,
      retry: (n: number, e: unknown) => !(e instanceof ApiError && (e.code === 403 || e.code === 401)) && n < 3,
    })),
  });
  const ready = results.map((r, i) => (r.data ? JSON.stringify(specs[i].key) : '')).join('|');
  useEffect(() => {
    const stops = specs.map((s, i) => {
      const rv = results[i].data?.resourceVersion;
      return rv === undefined ? undefined : follow<T>(qc, s.path, s.q, rv);
    });
    return () => stops.forEach((stop) => stop?.());
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [ready]);
  const maps = results.map((r) => r.data?.items);
  const version = results.map((r) => `${r.dataUpdatedAt}`).join('|') + ready;
  const byKey = useMemo(() => {
    if (maps.length === 1) return (maps[0] ?? EMPTY) as Map<string, T>;
    const m = new Map<string, T>();
    for (const part of maps) if (part) for (const [k, v] of part) m.set(k, v);
    return m;
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [version]);
  const items = useMemo(() => Array.from(byKey.values()), [byKey]);
  return {
    items,
    byKey,
    isLoading: results.some((r) => r.isLoading),
    error: results.find((r) => r.error)?.error ?? null,
  };
}

/** One object, live: read from the watched list of its namespace filtered to its name. */
export function useLiveObject<T extends KObject = KObject>(plural: string, namespace: string | undefined, name: string) {
  const list = useLiveList<T>(plural, namespace, { fieldSelector: `metadata.name=${name}` });
  const object = list.byKey.get(namespace ? `${namespace}/${name}` : name);
  return { object, isLoading: list.isLoading, error: list.error };
}

export interface AccessQuestion {
  verb: string;
  resource: string;
  namespace?: string;
  name?: string;
}

/** Whether the signed-in user may do it, by the API's own answer; undefined while asking. */
export function useCan(verb: string, resource: string, namespace?: string, name?: string): boolean | undefined {
  const q = useQuery({
    queryKey: ['can', verb, resource, namespace ?? '', name ?? ''],
    queryFn: async () => {
      const body: AccessQuestion = { verb, resource };
      if (namespace) body.namespace = namespace;
      if (name) body.name = name;
      const r = await api<{ allowed: boolean }>('/auth/v1/access-review', { method: 'POST', body });
      return r.allowed;
    },
    staleTime: 60_000,
  });
  return q.data;
}

export interface WhoAmI {
  name: string;
  user?: string;
  groups?: string[];
  kind?: string;
}

export function useWhoAmI() {
  return useQuery({
    queryKey: ['whoami'],
    queryFn: () => api<WhoAmI>('/auth/v1/whoami'),
    staleTime: 300_000,
  });
}

export { keyOf };

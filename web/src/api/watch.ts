// Lists fed by watches: list once, then follow `?watch=true` from the list's resourceVersion
// (NDJSON over fetch, with the Authorization header, never a token in the URL). Events are
// reduced into a keyed map by the pure `applyEvents`; `followList` reconnects with backoff and
// lists again when the server says the revision is gone (410).

import { ApiError, send, withQuery } from './client';
import type { KObject, ObjectList } from './types';

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

export interface WatchEvent<T extends KObject = KObject> {
  type: WatchEventType;
  object: T;
}

/** The key of an object in a list: `namespace/name`, or `name` for cluster objects. */
export function keyOf(o: KObject): string {
  return o.metadata.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : o.metadata.name;
}

export interface ListState<T extends KObject = KObject> {
  items: Map<string, T>;
  resourceVersion: string;
}

/** Whether an ERROR event means the watch must start over from a fresh list. */
export function isGone(e: WatchEvent): boolean {
  const s = e.object as unknown as { code?: number; reason?: string };
  return e.type === 'ERROR' && (s.code === 410 || s.reason === 'Expired' || s.reason === 'Gone');
}

/**
 * The list after `events`, as a new state (the old one is not changed; unchanged when no event
 * changes anything). BOOKMARKs only move the revision; ERRORs are left to the caller.
 */
export function applyEvents<T extends KObject>(state: ListState<T>, events: WatchEvent<T>[]): ListState<T> {
  if (events.length === 0) return state;
  let items: Map<string, T> | null = null;
  let rv = state.resourceVersion;
  for (const e of events) {
    if (e.type === 'ERROR') continue;
    const v = e.object?.metadata?.resourceVersion;
    if (v) rv = v;
    if (e.type === 'BOOKMARK') continue;
    items ??= new Map(state.items);
    const k = keyOf(e.object);
    if (e.type === 'DELETED') items.delete(k);
    else {
      // an older event than what we hold (a re-list raced a watch) does not win
      const held = items.get(k);
      if (held && Number(held.metadata.resourceVersion) > Number(v)) continue;
      items.set(k, e.object);
    }
  }
  if (!items && rv === state.resourceVersion) return state;
  return { items: items ?? state.items, resourceVersion: rv };
}

/** The events of an NDJSON body, one per line. */
export async function* readNdjson<T>(body: ReadableStream<Uint8Array>, signal?: AbortSignal): AsyncGenerator<T> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  try {
    for (;;) {
      if (signal?.aborted) return;
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (line) yield JSON.parse(line) as T;
      }
    }
    const rest = (buf + decoder.decode()).trim();
    if (rest) yield JSON.parse(rest) as T;
  } finally {
    reader.cancel().catch(() => undefined);
  }
}

export interface ListQuery {
  labelSelector?: string;
  fieldSelector?: string;
}

export async function listOnce<T extends KObject>(path: string, q: ListQuery = {}, signal?: AbortSignal) {
  const r = await send(path, { query: { ...q }, signal });
  const list = (await r.json()) as ObjectList<T>;
  const items = new Map<string, T>();
  for (const o of list.items ?? []) items.set(keyOf(o), o);
  return { items, resourceVersion: list.metadata?.resourceVersion ?? '0' } as ListState<T>;
}

export interface Follow<T extends KObject> {
  /** a whole new list (first list and every re-list) */
  onList(state: ListState<T>): void;
  /** events as they come; the caller batches them */
  onEvents(events: WatchEvent<T>[]): void;
  /** the connection broke (null once it works again) */
  onError?(e: unknown): void;
}

/**
 * Lists `path` (unless `from` gives the revision of a list already held) and follows it until
 * `signal` aborts: reconnects (1 s doubling to 30 s) from the
 * last revision seen, lists again after a 410. Events that arrive in one read are handed over
 * together.
 */
export async function followList<T extends KObject>(
  path: string,
  q: ListQuery,
  f: Follow<T>,
  signal: AbortSignal,
  from: string | null = null,
): Promise<void> {
  let rv: string | null = from;
  let backoff = 1000;
  while (!signal.aborted) {
    try {
      if (rv === null) {
        const state = await listOnce<T>(path, q, signal);
        rv = state.resourceVersion;
        f.onList(state);
      }
      const url = withQuery(path, {
        ...q,
        watch: true,
        resourceVersion: rv,
        allowWatchBookmarks: true,
        timeoutSeconds: 1800,
      });
      const r = await send(url, { signal, headers: { Accept: 'application/json;stream=watch' } });
      if (!r.body) throw new Error('the watch answered no body');
      f.onError?.(null);
      backoff = 1000;
      for await (const e of readNdjson<WatchEvent<T>>(r.body, signal)) {
        if (e.type === 'ERROR') {
          if (isGone(e)) {
            rv = null;
            break;
          }
          throw new ApiError((e.object as unknown as { code?: number }).code ?? 500, e.object as never);
        }
        const v = e.object?.metadata?.resourceVersion;
        if (v) rv = v;
        f.onEvents([e]);
      }
    } catch (e) {
      if (signal.aborted) return;
      if (e instanceof ApiError && e.code === 410) rv = null;
      f.onError?.(e);
      await new Promise((res) => setTimeout(res, backoff));
      backoff = Math.min(backoff * 2, 30_000);
    }
  }
}

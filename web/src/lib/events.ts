// A GameServer's Events: the namespace's events are watched and the ones about this server
// kept (the API has no field selector on the involved object), newest first. An Event keeps
// its fields under `spec` (involvedObject, reason, message, type, count, lastTimestamp);
// top-level fields are read too, in case a writer puts them there.

import type { KObject } from '../api/types';

export interface EventView {
  key: string;
  type: string;
  reason: string;
  message: string;
  count: number;
  /** the last time it happened (ISO), or when it was first seen / created */
  lastTimestamp?: string;
  source?: string;
}

interface Involved {
  kind?: string;
  name?: string;
  namespace?: string;
  uid?: string;
}

function field(e: KObject, name: string): unknown {
  const spec = e.spec as Record<string, unknown> | undefined;
  return spec?.[name] ?? (e as Record<string, unknown>)[name];
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

/** Whether event `e` is about the GameServer `gs` (by kind, namespace, name and uid when both have one). */
export function isAbout(e: KObject, gs: KObject): boolean {
  const o = field(e, 'involvedObject') as Involved | undefined;
  if (!o || o.kind !== 'GameServer' || o.name !== gs.metadata.name) return false;
  const ns = o.namespace ?? e.metadata.namespace;
  if (ns && gs.metadata.namespace && ns !== gs.metadata.namespace) return false;
  if (o.uid && gs.metadata.uid && o.uid !== gs.metadata.uid) return false;
  return true;
}

export function toView(e: KObject): EventView {
  const count = field(e, 'count');
  return {
    key: e.metadata.uid ?? `${e.metadata.namespace}/${e.metadata.name}`,
    type: str(field(e, 'type')) ?? 'Normal',
    reason: str(field(e, 'reason')) ?? '',
    message: str(field(e, 'message')) ?? '',
    count: typeof count === 'number' ? count : 1,
    lastTimestamp:
      str(field(e, 'lastTimestamp')) ?? str(field(e, 'firstTimestamp')) ?? e.metadata.creationTimestamp,
    source: str(field(e, 'source')) || undefined,
  };
}

/** The events about `gs`, newest first (ties: by name, for a stable order). */
export function eventsFor(events: readonly KObject[], gs: KObject): EventView[] {
  return events
    .filter((e) => isAbout(e, gs))
    .map(toView)
    .sort((a, b) => {
      const ta = a.lastTimestamp ? Date.parse(a.lastTimestamp) : 0;
      const tb = b.lastTimestamp ? Date.parse(b.lastTimestamp) : 0;
      return tb - ta || b.key.localeCompare(a.key);
    });
}

/** "5 s ago", "3 min ago", "2 h ago", "4 d ago" (`now` in ms). */
export function ago(iso: string | undefined, now: number): string {
  if (!iso) return '—';
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return iso;
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

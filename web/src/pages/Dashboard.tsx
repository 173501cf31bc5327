import { useEffect, useMemo, useRef, useState } from 'react';
import { useQuery } from '@tanstack/react-query';
import { useVirtualizer } from '@tanstack/react-virtual';
import { Link, useSearch, useLocation } from 'wouter';

import { api, resourcePath, send } from '../api/client';
import { useCan, useLiveLists, type ListScope } from '../api/hooks';
import { gameServerScopes, useRules } from '../api/scopes';
import type { GameServer } from '../api/types';
import { keyOf } from '../api/watch';
import { cpuCores, formatBytes, parseServerSamples, type ServerSample } from '../lib/prometheus';
import { ErrorAlert, ListToolbar } from '../components/AdminKit';
import { Phase } from '../components/Phase';

const PHASES = ['Pending', 'Scheduled', 'Installing', 'Starting', 'Running', 'Stopping', 'Stopped', 'Crashed', 'Suspended', 'Transferring', 'Unknown', 'Error'];

/** The dashboard's filters live in the URL (`?ns=&labels=&phase=&q=`) so a view can be shared. */
function useFilters() {
  const search = useSearch();
  const [location, navigate] = useLocation();
  const params = new URLSearchParams(search);
  const get = (k: string) => params.get(k) ?? '';
  const set = (k: string, v: string) => {
    const next = new URLSearchParams(search);
    if (v) next.set(k, v);
    else next.delete(k);
    const s = next.toString();
    navigate(s ? `${location}?${s}` : location, { replace: true });
  };
  return { ns: get('ns'), labels: get('labels'), phase: get('phase'), q: get('q'), set };
}

interface Usage {
  cores?: number;
  memory?: number;
  limit?: number;
}

/** CPU and memory of every server from /metrics, polled every 15 s when the user may read it. */
function useUsage(enabled: boolean): Map<string, Usage> {
  const last = useRef<{ at: number; samples: Map<string, ServerSample> } | null>(null);
  const q = useQuery({
    queryKey: ['metrics-usage'],
    enabled,
    refetchInterval: 15_000,
    queryFn: async () => {
      const text = await (await send('/metrics')).text();
      const samples = parseServerSamples(text);
      const now = Date.now();
      const before = last.current;
      last.current = { at: now, samples };
      const out = new Map<string, Usage>();
      for (const [k, s] of samples) {
        const cores = before ? cpuCores(before.samples.get(k)?.cpuSeconds, s.cpuSeconds, (now - before.at) / 1000) : undefined;
        out.set(k, { cores, memory: s.memoryBytes, limit: s.memoryLimitBytes });
      }
      return out;
    },
  });
  return q.data ?? new Map();
}

/** Where players connect: the node's address and the first port's host port. */
export function addressOf(g: GameServer): string {
  const address = g.status?.address;
  if (!address) return '—';
  const port = g.status?.ports?.find((p) => p.hostPort)?.hostPort;
  return port ? `${address}:${port}` : address;
}

export function Dashboard() {
  const f = useFilters();
  const rules = useRules();
  const canListAll = useCan('list', 'gameservers');
  const canMetrics = useCan('get', 'metrics');
  const canCreate = useCan('create', 'gameservers', f.ns || 'default');
  const scopes: ListScope[] = useMemo(() => {
    const base = rules.data ? gameServerScopes(rules.data.rules) : canListAll ? [{}] : [];
    const labelSelector = f.labels.trim() || undefined;
    return base
      .filter((s) => !f.ns || !s.namespace || s.namespace === f.ns)
      .map((s) => ({ ...s, namespace: f.ns || s.namespace, labelSelector }));
  }, [rules.data, canListAll, f.ns, f.labels]);
  const list = useLiveLists<GameServer>('gameservers', scopes);
  const usage = useUsage(canMetrics === true);

  const namespaces = useMemo(() => {
    const s = new Set<string>();
    for (const g of list.items) if (g.metadata.namespace) s.add(g.metadata.namespace);
    if (f.ns) s.add(f.ns);
    return [...s].sort();
  }, [list.items, f.ns]);

  const rows = useMemo(() => {
    const q = f.q.toLowerCase();
    return list.items
      .filter((g) => !f.phase || (g.status?.phase ?? 'Pending') === f.phase)
      .filter((g) => !q || g.metadata.name.toLowerCase().includes(q))
      .sort((a, b) => keyOf(a).localeCompare(keyOf(b)));
  }, [list.items, f.phase, f.q]);

  const [selected, setSelected] = useState<Set<string>>(new Set());
  useEffect(() => {
    // what left the list is no longer selected
    setSelected((old) => {
      const next = new Set([...old].filter((k) => list.byKey.has(k)));
      return next.size === old.size ? old : next;
    });
  }, [list.byKey]);
  const [bulk, setBulk] = useState<{ busy: boolean; message: string; failed: string[] }>({ busy: false, message: '', failed: [] });

  const runBulk = async (action: 'start' | 'stop' | 'restart') => {
    const targets = rows.filter((g) => selected.has(keyOf(g)));
    setBulk({ busy: true, message: `${action}: 0 of ${targets.length}`, failed: [] });
    const failed: string[] = [];
    let done = 0;
    // eight at a time: a thousand servers must not become a thousand parallel requests
    const queue = [...targets];
    const worker = async () => {
      for (let g = queue.shift(); g; g = queue.shift()) {
        try {
          await api(resourcePath('gameservers', g.metadata.namespace, g.metadata.name, action), { method: 'POST' });
        } catch (e) {
          failed.push(`${keyOf(g)}: ${e instanceof Error ? e.message : String(e)}`);
        }
        done += 1;
        setBulk({ busy: true, message: `${action}: ${done} of ${targets.length}`, failed: [...failed] });
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    setBulk({
      busy: false,
      message: `${action}: ${targets.length - failed.length} of ${targets.length} done${failed.length ? `, ${failed.length} refused` : ''}`,
      failed,
    });
  };

  const scroller = useRef<HTMLDivElement>(null);
  const virtual = useVirtualizer({
    count: rows.length,
    getScrollElement: () => scroller.current,
    estimateSize: () => 41,
    overscan: 12,
  });
  const vitems = virtual.getVirtualItems();
  const padTop = vitems.length ? vitems[0].start : 0;
  const padBottom = vitems.length ? virtual.getTotalSize() - vitems[vitems.length - 1].end : 0;
  const allSelected = rows.length > 0 && rows.every((g) => selected.has(keyOf(g)));
  const noAccess = rules.data && scopes.length === 0 && !f.ns;

  return (
    <section aria-labelledby="gs-title">
      <ListToolbar
        id="gs-title"
        title="Game servers"
        loading={list.isLoading}
        count={`${rows.length} of ${list.items.length}`}
        countTestId="gs-count"
      >
        {canCreate && (
          <Link href={f.ns ? `/gameservers/new?ns=${encodeURIComponent(f.ns)}` : '/gameservers/new'} className="button primary">
            New game server
          </Link>
        )}
      </ListToolbar>
      <form className="toolbar" role="search" aria-label="Filter game servers" onSubmit={(e) => e.preventDefault()}>
        <label className="sr-only" htmlFor="f-q">
          Name contains
        </label>
        <input id="f-q" placeholder="Name contains…" value={f.q} onChange={(e) => f.set('q', e.target.value)} />
        <label className="sr-only" htmlFor="f-ns">
          Namespace
        </label>
        <select id="f-ns" value={f.ns} onChange={(e) => f.set('ns', e.target.value)}>
          <option value="">All namespaces</option>
          {namespaces.map((n) => (
            <option key={n}>{n}</option>
          ))}
        </select>
        <label className="sr-only" htmlFor="f-labels">
          Label selector
        </label>
        <input
          id="f-labels"
          placeholder="Labels: game=minecraft,tier!=free"
          defaultValue={f.labels}
          onBlur={(e) => f.set('labels', e.target.value.trim())}
          onKeyDown={(e) => {
            if (e.key === 'Enter') f.set('labels', (e.target as HTMLInputElement).value.trim());
          }}
        />
        <label className="sr-only" htmlFor="f-phase">
          Phase
        </label>
        <select id="f-phase" value={f.phase} onChange={(e) => f.set('phase', e.target.value)}>
          <option value="">Every phase</option>
          {PHASES.map((p) => (
            <option key={p}>{p}</option>
          ))}
        </select>
      </form>
      <ErrorAlert error={list.error} />
      {noAccess && <p className="notice">No game server is shared with you yet.</p>}
      {selected.size > 0 && (
        <div className="toolbar" role="group" aria-label="Selected servers">
          <strong>{selected.size} selected</strong>
          <button disabled={bulk.busy} onClick={() => void runBulk('start')}>
            Start
          </button>
          <button disabled={bulk.busy} onClick={() => void runBulk('stop')}>
            Stop
          </button>
          <button disabled={bulk.busy} onClick={() => void runBulk('restart')}>
            Restart
          </button>
          <button onClick={() => setSelected(new Set())}>Clear</button>
        </div>
      )}
      {bulk.message && (
        <div className={bulk.failed.length ? 'alert' : 'notice'} role="status">
          {bulk.message}
          {bulk.failed.length > 0 && (
            <ul>
              {bulk.failed.slice(0, 10).map((m) => (
                <li key={m}>{m}</li>
              ))}
            </ul>
          )}
        </div>
      )}
      <div className="table-wrap" ref={scroller} style={{ maxHeight: 'calc(100vh - 230px)', minHeight: 200 }}>
        <table aria-label="Game servers" aria-rowcount={rows.length + 1}>
          <thead>
            <tr>
              <th scope="col">
                <input
                  type="checkbox"
                  aria-label="Select every server shown"
                  checked={allSelected}
                  onChange={() => setSelected(allSelected ? new Set() : new Set(rows.map(keyOf)))}
                />
              </th>
              <th scope="col">Name</th>
              <th scope="col">Namespace</th>
              <th scope="col">Phase</th>
              <th scope="col">Node</th>
              <th scope="col">Address</th>
              <th scope="col">CPU</th>
              <th scope="col">Memory</th>
            </tr>
          </thead>
          <tbody>
            {padTop > 0 && (
              <tr aria-hidden="true">
                <td colSpan={8} style={{ height: padTop, padding: 0, border: 0 }} />
              </tr>
            )}
            {vitems.map((v) => {
              const g = rows[v.index];
              const k = keyOf(g);
              const u = usage.get(k);
              const phase = g.status?.phase ?? 'Pending';
              return (
                <tr key={k} data-testid={`gs-row-${k}`} aria-rowindex={v.index + 2}>
                  <td>
                    <input
                      type="checkbox"
                      aria-label={`Select ${g.metadata.name}`}
                      checked={selected.has(k)}
                      onChange={() => {
                        const next = new Set(selected);
                        if (next.has(k)) next.delete(k);
                        else next.add(k);
                        setSelected(next);
                      }}
                    />
                  </td>
                  <td>
                    <Link href={`/gameservers/${g.metadata.namespace}/${g.metadata.name}`}>{g.metadata.name}</Link>
                  </td>
                  <td>{g.metadata.namespace}</td>
                  <td>
                    <Phase phase={phase} />
                  </td>
                  <td>{g.status?.nodeName ?? g.spec?.nodeName ?? '—'}</td>
                  <td className="mono">{addressOf(g)}</td>
                  <td>{u?.cores !== undefined ? `${(u.cores * 100).toFixed(0)}%` : '—'}</td>
                  <td>
                    {formatBytes(u?.memory)}
                    {u?.limit ? <span className="muted"> / {formatBytes(u.limit)}</span> : null}
                  </td>
                </tr>
              );
            })}
            {padBottom > 0 && (
              <tr aria-hidden="true">
                <td colSpan={8} style={{ height: padBottom, padding: 0, border: 0 }} />
              </tr>
            )}
            {!list.isLoading && rows.length === 0 && (
              <tr>
                <td colSpan={8} className="muted">
                  No game server matches.
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
    </section>
  );
}

// The Overview tab: the server's status facts, its conditions, and its Events (watched live).

import { useEffect, useMemo, useState } from 'react';

import { useCan, useLiveList } from '../../api/hooks';
import type { Condition, GameServer, KObject } from '../../api/types';
import { formatBytes } from '../../lib/prometheus';
import { ago, eventsFor } from '../../lib/events';
import { pullProgress } from '../../lib/pullProgress';
import { Phase } from '../../components/Phase';

interface PortView {
  name?: string;
  containerPort?: number;
  hostPort?: number;
  protocol?: string;
}

interface StatusView {
  phase?: string;
  reason?: string;
  message?: string;
  nodeName?: string;
  address?: string;
  ports?: PortView[];
  restartCount?: number;
  lastExit?: { exitCode?: number; oomKilled?: boolean; finishedAt?: string };
  templateGeneration?: number;
  disk?: { usedBytes?: number; limitBytes?: number };
  transfer?: { from?: string; to?: string; step?: string };
  conditions?: Condition[];
}

/** The time now, updated every `ms` (for "5 min ago"). */
function useNow(ms = 30_000): number {
  const [now, setNow] = useState(Date.now);
  useEffect(() => {
    const id = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(id);
  }, [ms]);
  return now;
}

function When({ iso, now }: { iso?: string; now: number }) {
  if (!iso) return <>—</>;
  return (
    <time dateTime={iso} title={new Date(iso).toLocaleString()}>
      {ago(iso, now)}
    </time>
  );
}

function Facts({ gs, now }: { gs: GameServer; now: number }) {
  const s = (gs.status ?? {}) as StatusView;
  const ports = s.ports ?? [];
  const exit = s.lastExit;
  return (
    <div className="card gs-section">
      <h2>Status</h2>
      <dl className="facts" data-testid="gs-facts">
        <dt>Phase</dt>
        <dd>
          <Phase phase={s.phase ?? 'Pending'} />
        </dd>
        {(s.reason || s.message) && (
          <>
            <dt>Reason</dt>
            <dd>
              {s.reason && <strong>{s.reason}</strong>}
              {s.reason && s.message ? ': ' : ''}
              {s.message}
            </dd>
          </>
        )}
        <dt>Node</dt>
        <dd>{s.nodeName ?? (gs.spec?.nodeName as string | undefined) ?? '—'}</dd>
        <dt>Address</dt>
        <dd className="mono">{s.address ?? '—'}</dd>
        <dt>Ports</dt>
        <dd>
          {ports.length === 0
            ? '—'
            : ports.map((p, i) => (
                <div key={`${p.name ?? i}`} className="mono">
                  {p.name ? `${p.name}: ` : ''}
                  {p.containerPort ?? '?'} → {p.hostPort ?? '?'}/{p.protocol ?? 'TCP'}
                </div>
              ))}
        </dd>
        <dt>Restarts</dt>
        <dd>{s.restartCount ?? 0}</dd>
        <dt>Last exit</dt>
        <dd>
          {exit ? (
            <>
              code {exit.exitCode ?? '?'}
              {exit.oomKilled && <span className="gs-warning"> (out of memory)</span>}
              {exit.finishedAt && (
                <>
                  , <When iso={exit.finishedAt} now={now} />
                </>
              )}
            </>
          ) : (
            '—'
          )}
        </dd>
        <dt>Template</dt>
        <dd>
          {gs.spec?.template ?? '—'}
          {s.templateGeneration !== undefined && <span className="muted"> (generation {s.templateGeneration})</span>}
        </dd>
        <dt>Disk</dt>
        <dd>
          {s.disk ? (
            <>
              {formatBytes(s.disk.usedBytes)} of {formatBytes(s.disk.limitBytes)}
            </>
          ) : (
            '—'
          )}
        </dd>
        {s.transfer && (
          <>
            <dt>Moving</dt>
            <dd>
              {s.transfer.from} → {s.transfer.to}: {s.transfer.step}
            </dd>
          </>
        )}
        <dt>Created</dt>
        <dd>
          <When iso={gs.metadata.creationTimestamp} now={now} />
        </dd>
      </dl>
    </div>
  );
}

function Conditions({ conditions, now }: { conditions: Condition[]; now: number }) {
  const pull = pullProgress(conditions);
  return (
    <div className="gs-section">
      <h2 id="gs-conditions">Conditions</h2>
      {pull != null && (
        <p className="gs-pull">
          <label>
            Pulling the image: {pull.message}{' '}
            <progress max={100} value={pull.percent} aria-label="Image pull progress" />
          </label>
        </p>
      )}
      {conditions.length === 0 ? (
        <p className="muted">No conditions yet.</p>
      ) : (
        <div className="table-wrap">
          <table aria-labelledby="gs-conditions" className="gs-wrap">
            <thead>
              <tr>
                <th scope="col">Type</th>
                <th scope="col">Status</th>
                <th scope="col">Reason</th>
                <th scope="col">Message</th>
                <th scope="col">Since</th>
              </tr>
            </thead>
            <tbody>
              {conditions.map((c) => (
                <tr key={c.type}>
                  <td>{c.type}</td>
                  <td>{c.status}</td>
                  <td>{c.reason ?? ''}</td>
                  <td>{c.message ?? ''}</td>
                  <td>
                    <When iso={c.lastTransitionTime} now={now} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </div>
  );
}

function Events({ gs, now }: { gs: GameServer; now: number }) {
  const list = useLiveList<KObject>('events', gs.metadata.namespace);
  const events = useMemo(() => eventsFor(list.items, gs), [list.items, gs]);
  return (
    <div className="gs-section">
      <h2 id="gs-events">Events</h2>
      {list.error != null ? (
        <div className="alert" role="alert">
          {list.error instanceof Error ? list.error.message : String(list.error)}
        </div>
      ) : list.isLoading ? (
        <p className="muted">Loading events…</p>
      ) : events.length === 0 ? (
        <p className="muted">No events for this server.</p>
      ) : (
        <div className="table-wrap">
          <table aria-labelledby="gs-events" className="gs-wrap" data-testid="gs-events">
            <thead>
              <tr>
                <th scope="col">Type</th>
                <th scope="col">Reason</th>
                <th scope="col">Message</th>
                <th scope="col">Count</th>
                <th scope="col">Last seen</th>
              </tr>
            </thead>
            <tbody>
              {events.map((e) => (
                <tr key={e.key}>
                  <td className={e.type === 'Warning' ? 'gs-warning' : undefined}>{e.type}</td>
                  <td>{e.reason}</td>
                  <td>{e.message}</td>
                  <td>{e.count}</td>
                  <td>
                    <When iso={e.lastTimestamp} now={now} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </div>
  );
}

export default function Overview({ gs }: { gs: GameServer }) {
  const now = useNow();
  const canEvents = useCan('list', 'events', gs.metadata.namespace);
  const conditions = ((gs.status as StatusView | undefined)?.conditions ?? []) as Condition[];
  return (
    <div>
      <Facts gs={gs} now={now} />
      <Conditions conditions={conditions} now={now} />
      {canEvents === true && <Events gs={gs} now={now} />}
    </div>
  );
}

// A GameServer's page: header with live phase and address, power buttons (each shown only when
// the API says the user may), and tabs. Each tab declares the permission it needs; a tab the
// user may not use is not shown, and its URL says so instead of showing it.

import { lazy, Suspense, useState, type ComponentType } from 'react';
import { useQuery } from '@tanstack/react-query';
import { Link } from 'wouter';

import { api, ApiError, resourcePath } from '../../api/client';
import { useCan, useLiveObject } from '../../api/hooks';
import type { GameServer } from '../../api/types';
import { Phase } from '../../components/Phase';
import Overview from './Overview';
import './gameserver.css';

// xterm and uPlot load only when their tab is first shown
const Console = lazy(() => import('./Console'));
const Metrics = lazy(() => import('./Metrics'));
const Yaml = lazy(() => import('./Yaml'));
const Variables = lazy(() => import('./Variables'));
const Files = lazy(() => import('./Files'));
const Backups = lazy(() => import('./Backups'));
const Schedules = lazy(() => import('./Schedules'));

export interface TabProps {
  gs: GameServer;
}

export interface TabDef {
  id: string;
  label: string;
  /**
   * What the tab needs, asked of the API's access review: [verb, resource]. Resources of the
   * server itself (`gameservers`, `gameservers/…`) are asked about this server by name; other
   * kinds (backups, schedules) about the namespace.
   */
  permission: [string, string];
  component: ComponentType<TabProps>;
}

/** The tabs in the order shown. */
export const TABS: TabDef[] = [
  { id: 'overview', label: 'Overview', permission: ['get', 'gameservers'], component: Overview },
  { id: 'console', label: 'Console', permission: ['get', 'gameservers/console'], component: Console },
  { id: 'files', label: 'Files', permission: ['get', 'gameservers/files'], component: Files },
  // always shown; editing needs patch gameservers, which the tab itself asks
  { id: 'variables', label: 'Variables', permission: ['get', 'gameservers'], component: Variables },
  { id: 'yaml', label: 'YAML', permission: ['get', 'gameservers'], component: Yaml },
  { id: 'backups', label: 'Backups', permission: ['list', 'backups'], component: Backups },
  { id: 'schedules', label: 'Schedules', permission: ['list', 'schedules'], component: Schedules },
  { id: 'metrics', label: 'Metrics', permission: ['get', 'gameservers/metrics'], component: Metrics },
];

function isServerResource(resource: string): boolean {
  return resource === 'gameservers' || resource.startsWith('gameservers/');
}

/** Whether the user may use `tab` of this server (undefined while the API is asked). */
function useTabAllowed(tab: TabDef | undefined, ns: string, name: string): boolean | undefined {
  const [verb, resource] = tab?.permission ?? ['get', 'gameservers'];
  return useCan(verb, resource, ns, isServerResource(resource) ? name : undefined);
}

function TabLink({ tab, ns, name, current }: { tab: TabDef; ns: string; name: string; current: boolean }) {
  const allowed = useTabAllowed(tab, ns, name);
  if (allowed !== true) return null;
  return (
    <Link
      href={`/gameservers/${encodeURIComponent(ns)}/${encodeURIComponent(name)}/${tab.id}`}
      aria-current={current ? 'page' : undefined}
      data-testid={`tab-${tab.id}`}
    >
      {tab.label}
    </Link>
  );
}

/**
 * The server, live: from the watched list of its namespace (by a name field selector). A user
 * who may only `get` this one server (a subuser's RoleBinding with resourceNames cannot list)
 * gets it by polling GET every 3 s instead.
 */
function useGameServer(ns: string, name: string) {
  const live = useLiveObject<GameServer>('gameservers', ns, name);
  const forbidden = live.error instanceof ApiError && live.error.code === 403;
  const polled = useQuery({
    queryKey: ['gameserver-get', ns, name],
    enabled: forbidden,
    queryFn: ({ signal }) => api<GameServer>(resourcePath('gameservers', ns, name), { signal }),
    refetchInterval: (q) => (q.state.error ? false : 3000),
    retry: false,
  });
  if (!forbidden) return { gs: live.object, isLoading: live.isLoading, error: live.error };
  return { gs: polled.data, isLoading: polled.isLoading, error: polled.error };
}

type Action = 'start' | 'stop' | 'restart' | 'reinstall' | 'suspend' | 'unsuspend';
const ACTION_LABEL: Record<Action, string> = {
  start: 'Start',
  stop: 'Stop',
  restart: 'Restart',
  reinstall: 'Reinstall',
  suspend: 'Suspend',
  unsuspend: 'Unsuspend',
};

function PowerButtons({ gs }: { gs: GameServer }) {
  const ns = gs.metadata.namespace ?? '';
  const name = gs.metadata.name;
  const can: Record<Action, boolean | undefined> = {
    start: useCan('create', 'gameservers/start', ns, name),
    stop: useCan('create', 'gameservers/stop', ns, name),
    restart: useCan('create', 'gameservers/restart', ns, name),
    reinstall: useCan('create', 'gameservers/reinstall', ns, name),
    suspend: useCan('create', 'gameservers/suspend', ns, name),
    unsuspend: useCan('create', 'gameservers/unsuspend', ns, name),
  };
  const [busy, setBusy] = useState<Action | null>(null);
  const [confirmReinstall, setConfirmReinstall] = useState(false);
  const [result, setResult] = useState<{ ok: boolean; text: string } | null>(null);
  const suspended = gs.spec?.suspended === true;

  const run = async (a: Action) => {
    setBusy(a);
    setResult(null);
    try {
      await api(resourcePath('gameservers', ns, name, a), { method: 'POST' });
      setResult({ ok: true, text: `${ACTION_LABEL[a]} requested.` });
    } catch (e) {
      setResult({ ok: false, text: `${ACTION_LABEL[a]}: ${e instanceof Error ? e.message : String(e)}` });
    } finally {
      setBusy(null);
    }
  };

  const button = (a: Action, className?: string, onClick?: () => void) =>
    can[a] === true ? (
      <button key={a} className={className} disabled={busy !== null} onClick={onClick ?? (() => void run(a))}>
        {busy === a ? `${ACTION_LABEL[a]}…` : ACTION_LABEL[a]}
      </button>
    ) : null;

  return (
    <>
      <div className="toolbar gs-power" role="group" aria-label="Power">
        {button('start', 'primary')}
        {button('stop')}
        {button('restart')}
        {button('reinstall', undefined, () => {
          setResult(null);
          setConfirmReinstall(true);
        })}
        {suspended ? button('unsuspend') : button('suspend', 'danger')}
      </div>
      {confirmReinstall && (
        <div className="notice" role="group" aria-labelledby="reinstall-q">
          <p id="reinstall-q" style={{ marginTop: 0 }}>
            Reinstall <strong>{name}</strong>? The Template’s install runs again on the server’s files.
          </p>
          <div className="toolbar" style={{ marginBottom: 0 }}>
            <button
              className="danger"
              autoFocus
              disabled={busy !== null}
              onClick={() => {
                setConfirmReinstall(false);
                void run('reinstall');
              }}
            >
              Reinstall now
            </button>
            <button onClick={() => setConfirmReinstall(false)}>Cancel</button>
          </div>
        </div>
      )}
      {result &&
        (result.ok ? (
          <p className="muted" role="status">
            {result.text}
          </p>
        ) : (
          <div className="alert" role="alert">
            {result.text}
          </div>
        ))}
    </>
  );
}

function TabBody({ tab, gs }: { tab: TabDef; gs: GameServer }) {
  const ns = gs.metadata.namespace ?? '';
  const allowed = useTabAllowed(tab, ns, gs.metadata.name);
  if (allowed === undefined) return <p className="muted">Checking access…</p>;
  if (!allowed)
    return (
      <p className="notice" data-testid="tab-forbidden">
        You may not use the {tab.label} tab of this server.
      </p>
    );
  const Body = tab.component;
  return (
    <Suspense fallback={<p className="muted">Loading…</p>}>
      <Body key={`${ns}/${gs.metadata.name}`} gs={gs} />
    </Suspense>
  );
}

export default function GameServerPage({ namespace, name, tab }: { namespace: string; name: string; tab?: string }) {
  const { gs, isLoading, error } = useGameServer(namespace, name);
  const current = TABS.find((t) => t.id === (tab || 'overview'));
  const back = (
    <p>
      <Link href="/">Back to the game servers</Link>
    </p>
  );

  if (isLoading) return <p className="muted">Loading {name}…</p>;
  if (!gs) {
    const notFound = !error || (error instanceof ApiError && error.code === 404);
    return (
      <section aria-labelledby="gs-title">
        <h1 id="gs-title">{name}</h1>
        {notFound ? (
          <p className="notice" data-testid="gs-not-found">
            There is no game server {name} in namespace {namespace}.
          </p>
        ) : (
          <div className="alert" role="alert">
            {error instanceof Error ? error.message : String(error)}
          </div>
        )}
        {back}
      </section>
    );
  }

  const status = gs.status ?? {};
  return (
    <section aria-labelledby="gs-title" className="gs-page">
      <header className="gs-header">
        <div className="gs-title">
          <h1 id="gs-title">{gs.metadata.name}</h1>
          <span className="muted">
            <span className="sr-only">Namespace: </span>
            {namespace}
          </span>
          <Phase phase={status.phase ?? 'Pending'} />
          {gs.spec?.suspended === true && <span className="gs-badge">Suspended</span>}
        </div>
        <p className="gs-address">
          Address:{' '}
          <span className="mono" data-testid="gs-address">
            {status.address ?? '—'}
          </span>
        </p>
      </header>
      <PowerButtons gs={gs} />
      <nav className="tabs" aria-label="Server sections">
        {TABS.map((t) => (
          <TabLink key={t.id} tab={t} ns={namespace} name={name} current={t.id === current?.id} />
        ))}
      </nav>
      {current ? (
        <TabBody tab={current} gs={gs} />
      ) : (
        <div data-testid="tab-not-found">
          <p className="notice">This server has no “{tab}” tab.</p>
        </div>
      )}
    </section>
  );
}

import { lazy, Suspense, useEffect, useState } from 'react';
import { Route, Switch } from 'wouter';

import { loadSession, onSession, type Session } from './api/client';
import { Layout } from './components/Layout';
import { Login } from './pages/Login';
import { Dashboard } from './pages/Dashboard';
import { NotFound } from './components/NotFound';

// pages with heavy widgets (Monaco, xterm, charts) load when first shown (React.lazy)
const GameServerPage = lazy(() => import('./pages/gameserver/GameServerPage'));

export function App() {
  const [session, setSession] = useState<Session | null>(loadSession);
  useEffect(() => onSession(setSession), []);
  if (!session) return <Login />;
  return (
    <Layout>
      <Suspense fallback={<p className="muted">Loading…</p>}>
        <Switch>
          <Route path="/" component={Dashboard} />
          <Route path="/gameservers/:ns/:name/:tab?">
            {(p) => <GameServerPage namespace={p.ns} name={p.name} tab={p.tab} />}
          </Route>
          <Route component={NotFound} />
        </Switch>
      </Suspense>
    </Layout>
  );
}

import { Suspense, useEffect, useState } from 'react';
import { Route, Switch } from 'wouter';

import { loadSession, onSession, type Session } from './api/client';
import { Layout } from './components/Layout';
import { Login } from './pages/Login';
import { Dashboard } from './pages/Dashboard';
import { NotFound } from './components/NotFound';

// pages with heavy widgets (Monaco, xterm, charts) load when first shown (React.lazy)

export function App() {
  const [session, setSession] = useState<Session | null>(loadSession);
  useEffect(() => onSession(setSession), []);
  if (!session) return <Login />;
  return (
    <Layout>
      <Suspense fallback={<p className="muted">Loading…</p>}>
        <Switch>
          <Route path="/" component={Dashboard} />
          <Route component={NotFound} />
        </Switch>
      </Suspense>
    </Layout>
  );
}

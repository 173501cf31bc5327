import { lazy, Suspense, useEffect, useState } from 'react';
import { Route, Switch } from 'wouter';

import { loadSession, onSession, type Session } from './api/client';
import { Layout } from './components/Layout';
import { Login } from './pages/Login';
import { Dashboard } from './pages/Dashboard';
import { NotFound } from './components/NotFound';

// pages with heavy widgets (Monaco, xterm, charts) load when first shown (React.lazy)
const GameServerPage = lazy(() => import('./pages/gameserver/GameServerPage'));
const EditYaml = lazy(() => import('./pages/EditYaml'));
const CreateGameServer = lazy(() => import('./pages/CreateGameServer'));
const Nodes = lazy(() => import('./pages/Nodes').then((m) => ({ default: m.Nodes })));
const AlertRules = lazy(() => import('./pages/AlertRules').then((m) => ({ default: m.AlertRules })));
const Users = lazy(() => import('./pages/Users').then((m) => ({ default: m.Users })));
const Roles = lazy(() => import('./pages/Roles').then((m) => ({ default: m.Roles })));
const ApiKeys = lazy(() => import('./pages/ApiKeys').then((m) => ({ default: m.ApiKeys })));
const Account = lazy(() => import('./pages/Account').then((m) => ({ default: m.Account })));
const Templates = lazy(() => import('./pages/Templates').then((m) => ({ default: m.Templates })));

export function App() {
  const [session, setSession] = useState<Session | null>(loadSession);
  useEffect(() => onSession(setSession), []);
  if (!session) return <Login />;
  return (
    <Layout>
      <Suspense fallback={<p className="muted">Loading…</p>}>
        <Switch>
          <Route path="/" component={Dashboard} />
          <Route path="/gameservers/new" component={CreateGameServer} />
          <Route path="/gameservers/:ns/:name/:tab?">
            {(p) => <GameServerPage namespace={p.ns} name={p.name} tab={p.tab} />}
          </Route>
          <Route path="/nodes" component={Nodes} />
          <Route path="/templates" component={Templates} />
          <Route path="/alertrules" component={AlertRules} />
          <Route path="/users" component={Users} />
          <Route path="/roles" component={Roles} />
          <Route path="/apikeys" component={ApiKeys} />
          <Route path="/account" component={Account} />
          <Route path="/yaml/:plural/new">{(p) => <EditYaml plural={p.plural} />}</Route>
          <Route path="/yaml/:plural/:ns/new">{(p) => <EditYaml plural={p.plural} namespace={p.ns} />}</Route>
          <Route path="/yaml/:plural/:name">{(p) => <EditYaml plural={p.plural} name={p.name} />}</Route>
          <Route path="/yaml/:plural/:ns/:name">
            {(p) => <EditYaml plural={p.plural} namespace={p.ns} name={p.name} />}
          </Route>
          <Route component={NotFound} />
        </Switch>
      </Suspense>
    </Layout>
  );
}

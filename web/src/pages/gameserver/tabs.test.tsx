// Smoke tests of the three tabs in jsdom against a fake API: they render what the API answers,
// hide what the access review refuses, and send the requests the API expects.

import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { cleanup, fireEvent, render, screen, waitFor } from '@testing-library/react';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { Router } from 'wouter';
import { memoryLocation } from 'wouter/memory-location';
import type { ReactNode } from 'react';

import type { GameServer } from '../../api/types';
import Files from './Files';
import Backups from './Backups';
import Schedules from './Schedules';

const gs: GameServer = { metadata: { name: 'web', namespace: 'default' }, spec: {}, status: { phase: 'Running' } };
const A = '/apis/catalyst.dev/v1alpha1/namespaces/default';

type Handler = (url: URL, init: RequestInit) => unknown;
let calls: { method: string; url: URL; body?: unknown }[] = [];
let allowed: (verb: string, resource: string) => boolean = () => true;
let routes: Record<string, Handler> = {};

function json(v: unknown, status = 200) {
  return new Response(JSON.stringify(v), { status, headers: { 'Content-Type': 'application/json' } });
}

beforeEach(() => {
  calls = [];
  allowed = () => true;
  localStorage.setItem(
    'catalyst.session',
    JSON.stringify({ accessToken: 't', expiresAt: new Date(Date.now() + 3600_000).toISOString(), username: 'u' }),
  );
  vi.stubGlobal('fetch', (input: string, init: RequestInit = {}) => {
    const url = new URL(input, 'http://x');
    const method = init.method ?? 'GET';
    calls.push({ method, url, body: init.body });
    if (url.pathname === '/auth/v1/access-review') {
      const q = JSON.parse(String(init.body)) as { verb: string; resource: string };
      return Promise.resolve(json({ allowed: allowed(q.verb, q.resource) }));
    }
    if (url.searchParams.get('watch') === 'true') {
      // a watch that stays open until aborted
      return new Promise((_, reject) => init.signal?.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError'))));
    }
    const h = routes[`${method} ${url.pathname}`];
    if (!h) return Promise.resolve(json({ kind: 'Status', code: 404, message: `no route ${method} ${url.pathname}` }, 404));
    const out = h(url, init);
    return Promise.resolve(out instanceof Response ? out : json(out));
  });
});

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
  routes = {};
});

function wrap(node: ReactNode, path = '/') {
  const qc = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  const { hook, searchHook } = memoryLocation({ path });
  return render(
    <QueryClientProvider client={qc}>
      <Router hook={hook} searchHook={searchHook}>
        {node}
      </Router>
    </QueryClientProvider>,
  );
}

const entry = (name: string, kind: string, size = 10) => ({
  name,
  path: `/${name}`,
  kind,
  size,
  mode: 0o644,
  modified: '2026-11-30T20:00:00Z',
  uid: 1000,
  gid: 1000,
});

describe('Files tab', () => {
  it('lists folders first and offers the allowed actions', async () => {
    routes[`GET ${A}/gameservers/web/files`] = () => ({
      path: '/',
      items: [entry('server.properties', 'file'), entry('world', 'directory', 4096), entry('w.zip', 'file')],
    });
    wrap(<Files gs={gs} />);
    const rows = await screen.findAllByRole('row');
    await waitFor(() => expect(screen.getByRole('button', { name: /^world.*folder/ })).toBeTruthy());
    const names = screen.getAllByRole('row').map((r) => r.textContent ?? '');
    expect(names.findIndex((t) => t.includes('world'))).toBeLessThan(names.findIndex((t) => t.includes('server.properties')));
    expect(rows.length).toBeGreaterThan(1);
    expect(await screen.findByRole('button', { name: 'Delete server.properties' })).toBeTruthy();
    expect(screen.getByRole('button', { name: 'Extract w.zip' })).toBeTruthy();
    expect(screen.getByLabelText('Upload files')).toBeTruthy();
    expect(screen.getByRole('button', { name: 'New folder' })).toBeTruthy();
    expect(screen.getByRole('button', { name: 'Copy server.properties' })).toBeTruthy();
    expect(screen.getByRole('button', { name: 'Download from URL' })).toBeTruthy();
  });

  it('hides writes from a reader and says when listing is refused', async () => {
    allowed = (verb) => verb === 'get';
    routes[`GET ${A}/gameservers/web/files`] = () => ({ path: '/', items: [entry('a.txt', 'file')] });
    wrap(<Files gs={gs} />);
    await screen.findByRole('button', { name: 'a.txt' });
    await waitFor(() => expect(screen.queryByRole('button', { name: 'Download a.txt' })).toBeTruthy());
    expect(screen.queryByRole('button', { name: 'Delete a.txt' })).toBeNull();
    expect(screen.queryByLabelText('Upload files')).toBeNull();
    cleanup();
    allowed = () => false;
    wrap(<Files gs={gs} />);
    expect(await screen.findByText(/may not see this server's files/)).toBeTruthy();
  });

  it('makes a folder with a normalised path, and shows the API refusal', async () => {
    routes[`GET ${A}/gameservers/web/files`] = () => ({ path: '/config', items: [] });
    routes[`POST ${A}/gameservers/web/files`] = () =>
      json({ kind: 'Status', code: 403, message: 'the template\'s fileDenylist does not allow it' }, 403);
    wrap(<Files gs={gs} />, '/?path=//config/');
    fireEvent.click(await screen.findByRole('button', { name: 'New folder' }));
    fireEvent.change(screen.getByLabelText('Folder name'), { target: { value: 'a/../b' } });
    fireEvent.click(screen.getByRole('button', { name: 'Create folder' }));
    expect((await screen.findByRole('alert')).textContent).toMatch(/fileDenylist/);
    const post = calls.find((c) => c.method === 'POST' && c.url.pathname.endsWith('/files'));
    expect(post?.url.searchParams.get('path')).toBe('/config/b');
    expect(post?.url.searchParams.get('op')).toBe('mkdir');
  });
});

describe('Backups tab', () => {
  it('lists this server\'s backups and creates one', async () => {
    routes[`GET ${A}/backups`] = () => ({
      metadata: { resourceVersion: '5' },
      items: [
        { metadata: { name: 'b1', namespace: 'default', creationTimestamp: '2026-11-30T20:00:00Z' }, spec: { gameServer: 'web', locked: true }, status: { phase: 'Completed', sizeBytes: 2048 } },
        { metadata: { name: 'other', namespace: 'default' }, spec: { gameServer: 'x' }, status: { phase: 'Completed' } },
      ],
    });
    routes[`GET ${A}/restores`] = () => ({ metadata: { resourceVersion: '5' }, items: [] });
    routes[`POST ${A}/backups`] = (_u, init) => JSON.parse(String(init.body));
    wrap(<Backups gs={gs} />);
    expect(await screen.findByText('b1')).toBeTruthy();
    expect(screen.queryByText('other')).toBeNull();
    expect(await screen.findByRole('button', { name: 'Unlock b1' })).toBeTruthy();
    fireEvent.click(screen.getByRole('button', { name: 'Create backup' }));
    fireEvent.click(screen.getAllByRole('button', { name: 'Create backup' }).at(-1) as HTMLElement);
    await waitFor(() => expect(calls.some((c) => c.method === 'POST' && c.url.pathname.endsWith('/backups'))).toBe(true));
    const body = JSON.parse(String(calls.find((c) => c.method === 'POST' && c.url.pathname.endsWith('/backups'))?.body));
    expect(body.spec.gameServer).toBe('web');
    expect(body.metadata.name).toMatch(/^web-\d{8}-\d{6}$/);
  });
});

describe('Schedules tab', () => {
  it('explains cron and shows the escalation message of a 403', async () => {
    routes[`GET ${A}/schedules`] = () => ({
      metadata: { resourceVersion: '5' },
      items: [
        { metadata: { name: 'nightly', namespace: 'default' }, spec: { gameServer: 'web', cron: '0 4 * * *', tasks: [{ action: 'Restart' }] }, status: { lastResult: 'Succeeded' } },
      ],
    });
    routes[`POST ${A}/schedules`] = () =>
      json({ kind: 'Status', code: 403, message: 'task 1 (Command) needs create gameservers/command on web' }, 403);
    wrap(<Schedules gs={gs} />);
    expect(await screen.findByText('nightly')).toBeTruthy();
    expect(screen.getByText(/At 04:00 every day/)).toBeTruthy();
    fireEvent.click(await screen.findByRole('button', { name: 'New schedule' }));
    fireEvent.change(screen.getByLabelText('Name'), { target: { value: 'say-hi' } });
    fireEvent.change(screen.getByLabelText('Task 1 action'), { target: { value: 'Command' } });
    fireEvent.change(screen.getByLabelText('Task 1 console command'), { target: { value: 'say hi' } });
    fireEvent.click(screen.getByRole('button', { name: 'Create schedule' }));
    const alert = await screen.findByRole('alert');
    expect(alert.textContent).toMatch(/gameservers\/command/);
    expect(alert.textContent).toMatch(/rights of whoever wrote it/);
  });
});

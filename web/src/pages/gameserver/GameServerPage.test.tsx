// The page shell against a fake API: tabs shown by the API's access answers, in order, the
// current one marked; a tab one may not use says so; unknown tab and unknown server.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { cleanup, render, screen, within } from '@testing-library/react';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';

import GameServerPage from './GameServerPage';

const gs = {
  apiVersion: 'catalyst.dev/v1alpha1',
  kind: 'GameServer',
  metadata: { name: 'web', namespace: 'default', uid: 'u1', resourceVersion: '5', creationTimestamp: '2026-01-01T00:00:00Z' },
  spec: { template: 'web' },
  status: {
    phase: 'Running',
    address: '10.0.0.1:25565',
    nodeName: 'n1',
    restartCount: 2,
    ports: [{ name: 'game', containerPort: 25565, hostPort: 30001, protocol: 'TCP' }],
    conditions: [{ type: 'Ready', status: 'True', reason: 'Started', message: 'up' }],
  },
};

const event = (name: string, reason: string, involved: Record<string, string>, at: string) => ({
  kind: 'Event',
  metadata: { name, namespace: 'default', uid: name },
  spec: { involvedObject: involved, reason, message: `${reason} message`, type: 'Normal', count: 1, lastTimestamp: at },
});

let allowed: Set<string>;
let servers: unknown[];

function answer(body: unknown, status = 200) {
  return Promise.resolve(new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } }));
}

beforeEach(() => {
  allowed = new Set(['get gameservers', 'get gameservers/console', 'list events', 'create gameservers/start']);
  servers = [gs];
  vi.stubGlobal(
    'fetch',
    vi.fn((url: string, init?: RequestInit) => {
      if (url === '/auth/v1/access-review') {
        const q = JSON.parse(String(init?.body)) as { verb: string; resource: string };
        return answer({ allowed: allowed.has(`${q.verb} ${q.resource}`) });
      }
      if (url.includes('watch=true')) return new Promise<Response>(() => undefined);
      if (url.includes('/gameservers')) return answer({ kind: 'GameServerList', metadata: { resourceVersion: '5' }, items: servers });
      if (url.includes('/events'))
        return answer({
          kind: 'EventList',
          metadata: { resourceVersion: '5' },
          items: [
            event('e1', 'Scheduled', { kind: 'GameServer', name: 'web', uid: 'u1' }, '2026-01-01T00:00:01Z'),
            event('e2', 'Started', { kind: 'GameServer', name: 'web', uid: 'u1' }, '2026-01-01T00:00:09Z'),
            event('e3', 'Other', { kind: 'GameServer', name: 'other' }, '2026-01-01T00:00:05Z'),
          ],
        });
      return answer({ kind: 'Status', code: 404, message: 'not found' }, 404);
    }),
  );
});

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

function show(tab?: string) {
  const qc = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  return render(
    <QueryClientProvider client={qc}>
      <GameServerPage namespace="default" name="web" tab={tab} />
    </QueryClientProvider>,
  );
}

describe('GameServerPage', () => {
  it('shows the server, the allowed tabs in order, and the overview', async () => {
    show();
    expect(await screen.findByRole('heading', { level: 1, name: 'web' })).toBeTruthy();
    expect(screen.getByTestId('gs-address').textContent).toBe('10.0.0.1:25565');
    const nav = screen.getByRole('navigation', { name: 'Server sections' });
    await within(nav).findByRole('link', { name: 'Console' });
    const links = within(nav).getAllByRole('link');
    expect(links.map((l) => l.textContent)).toEqual(['Overview', 'Console', 'Variables', 'YAML']);
    expect(links[0].getAttribute('aria-current')).toBe('page');
    expect(links[1].getAttribute('href')).toBe('/gameservers/default/web/console');
    // power: only what the API allows
    expect(await screen.findByRole('button', { name: 'Start' })).toBeTruthy();
    expect(screen.queryByRole('button', { name: 'Stop' })).toBeNull();
    // overview facts, conditions, the server's own events newest first
    expect(screen.getByTestId('gs-facts').textContent).toContain('25565 → 30001/TCP');
    const events = await screen.findByTestId('gs-events');
    const rows = within(events).getAllByRole('row').slice(1);
    expect(rows.map((r) => within(r).getAllByRole('cell')[1].textContent)).toEqual(['Started', 'Scheduled']);
  });

  it('shows a progress bar while the image is pulled, and none before or after', async () => {
    const pulling = { type: 'ImagePulled', status: 'False', reason: 'Pulling', message: '12.0 MiB of 48.0 MiB (25%)' };
    servers = [{ ...gs, status: { ...gs.status, conditions: [pulling] } }];
    show();
    const bar = await screen.findByRole('progressbar', { name: 'Image pull progress' });
    expect(bar.getAttribute('value')).toBe('25');
    expect(screen.getByText(/Pulling the image: 12\.0 MiB of 48\.0 MiB/)).toBeTruthy();
    cleanup();
    servers = [gs];
    show();
    await screen.findByRole('heading', { level: 1, name: 'web' });
    expect(screen.queryByRole('progressbar')).toBeNull();
  });

  it('says a tab is not allowed instead of showing it', async () => {
    show('metrics');
    expect((await screen.findByTestId('tab-forbidden')).textContent).toMatch(/^You may not/);
    expect(screen.queryByRole('link', { name: 'Metrics' })).toBeNull();
  });

  it('says an unknown tab is not there', async () => {
    show('nonsense');
    expect((await screen.findByTestId('tab-not-found')).textContent).toContain('no “nonsense” tab');
  });

  it('says an unknown server is not there', async () => {
    servers = [];
    show();
    expect((await screen.findByTestId('gs-not-found')).textContent).toContain('no game server web');
  });
});

// The create form against a fake API: a Template's defaults fill it, a dry-run create checks it
// after quiet and its causes land on their fields, Create posts the object and opens the server.

import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { cleanup, configure, fireEvent, render, screen, waitFor } from '@testing-library/react';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { Router } from 'wouter';
import { memoryLocation } from 'wouter/memory-location';

import { saveSession } from '../api/client';
import type { Template } from '../api/types';
import CreateGameServer from './CreateGameServer';

const demo: Template = {
  apiVersion: 'catalyst.dev/v1alpha1',
  kind: 'Template',
  metadata: { name: 'demo', generation: 1 },
  spec: {
    description: 'A small web server',
    images: [
      { name: 'busybox', image: 'oci-archive:/var/lib/catalyst/images/busybox.tar' },
      { name: 'other', image: 'example.org/other:1' },
    ],
    ports: [{ name: 'game', containerPort: 8080, protocol: 'TCP' }],
    resources: { cpu: '500m', memory: '64Mi' },
    variables: [
      { name: 'MOTD', displayName: 'Message of the day', default: "Catalyst's demo", rules: 'required|string|max:40', userViewable: true, userEditable: true },
    ],
  },
};

// two cores shared by several test runs: be patient, not flaky
configure({ asyncUtilTimeout: 8000 });
vi.setConfig({ testTimeout: 30_000 });

interface Call {
  url: string;
  method: string;
  body?: string;
}
let calls: Call[];
let postAnswers: ((c: Call) => Response)[];

function json(status: number, v: unknown) {
  return new Response(JSON.stringify(v), { status, headers: { 'Content-Type': 'application/json' } });
}

beforeEach(() => {
  calls = [];
  postAnswers = [];
  saveSession({ accessToken: 't', expiresAt: new Date(Date.now() + 3600_000).toISOString(), username: 'u' });
  vi.stubGlobal(
    'fetch',
    vi.fn(async (input: string, init: RequestInit = {}) => {
      const c: Call = { url: String(input).replace(/[?&]fieldManager=panel$/, '').replace(/([?&])fieldManager=panel&/, '$1'), method: init.method ?? 'GET', body: init.body as string | undefined };
      calls.push(c);
      if (c.url === '/auth/v1/access-review') {
        const q = JSON.parse(c.body!);
        return json(200, { allowed: q.verb === 'create' });
      }
      if (c.url.includes('watch=true')) {
        const body = new ReadableStream({
          start(ctl) {
            init.signal?.addEventListener('abort', () => ctl.error(new DOMException('aborted', 'AbortError')));
          },
        });
        return new Response(body, { status: 200 });
      }
      if (c.url.includes('/templates')) return json(200, { items: [demo], metadata: { resourceVersion: '3' } });
      if (c.method === 'POST' && c.url.includes('/gameservers')) {
        const next = postAnswers.shift();
        return next ? next(c) : json(201, JSON.parse(c.body!));
      }
      return json(404, { message: `no fake for ${c.url}` });
    }),
  );
});

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
  saveSession(null);
});

describe('CreateGameServer', () => {
  it('fills the Template defaults, shows the dry run causes, creates and opens the server', async () => {
    const loc = memoryLocation({ path: '/gameservers/new', searchPath: 'ns=games', record: true });
    const qc = new QueryClient({ defaultOptions: { queries: { retry: false } } });
    render(
      <QueryClientProvider client={qc}>
        <Router hook={loc.hook} searchHook={loc.searchHook}>
          <CreateGameServer />
        </Router>
      </QueryClientProvider>,
    );
    expect((screen.getByLabelText('Namespace') as HTMLInputElement).value).toBe('games');
    await screen.findByRole('option', { name: 'demo' });
    fireEvent.change(screen.getByLabelText('Template'), { target: { value: 'demo' } });
    expect((await screen.findByLabelText('Memory') as HTMLInputElement).value).toBe('64Mi');
    expect((screen.getByLabelText('CPU') as HTMLInputElement).value).toBe('500m');
    expect((screen.getByLabelText('Image') as HTMLSelectElement).value).toBe('oci-archive:/var/lib/catalyst/images/busybox.tar');
    const motd = screen.getByLabelText(/Message of the day/) as HTMLInputElement;
    expect(motd.value).toBe("Catalyst's demo");

    // a bad name is caught by the browser and nothing is asked
    fireEvent.change(screen.getByLabelText('Name'), { target: { value: 'Web' } });
    expect(screen.getByText(/lowercase letters/, { selector: '.error' })).toBeTruthy();
    expect((screen.getByRole('button', { name: 'Create game server' }) as HTMLButtonElement).disabled).toBe(true);

    postAnswers.push(() =>
      json(422, { kind: 'Status', code: 422, message: 'invalid', details: { causes: [{ field: 'spec.variables[MOTD]', message: 'not welcome here' }, { field: 'spec.resources.memory', message: 'exceeds the quota' }] } }),
    );
    fireEvent.change(screen.getByLabelText('Name'), { target: { value: 'web' } });
    fireEvent.change(motd, { target: { value: 'hello' } });
    await waitFor(() => expect(screen.getByText('not welcome here')).toBeTruthy(), { timeout: 8000 });
    expect(screen.getByText('exceeds the quota')).toBeTruthy();
    expect(screen.getByLabelText('Memory').getAttribute('aria-invalid')).toBe('true');
    const dry = calls.filter((c) => c.method === 'POST' && c.url.includes('/gameservers'));
    expect(dry).toHaveLength(1);
    expect(dry[0].url).toBe('/apis/catalyst.dev/v1alpha1/namespaces/games/gameservers?dryRun=All');
    expect(JSON.parse(dry[0].body!)).toEqual({
      apiVersion: 'catalyst.dev/v1alpha1',
      kind: 'GameServer',
      metadata: { name: 'web', namespace: 'games' },
      spec: {
        template: 'demo',
        variables: { MOTD: 'hello' },
        resources: { cpu: '500m', memory: '64Mi' },
        ports: [{ name: 'game', containerPort: 8080, protocol: 'TCP' }],
      },
    });

    fireEvent.change(screen.getByLabelText('Memory'), { target: { value: '32Mi' } });
    await waitFor(() => expect(screen.queryByText('exceeds the quota')).toBeNull(), { timeout: 8000 });
    fireEvent.click(screen.getByRole('button', { name: 'Create game server' }));
    await waitFor(() => expect(loc.history.at(-1)).toBe('/gameservers/games/web'), { timeout: 8000 });
    const posts = calls.filter((c) => c.method === 'POST' && c.url.includes('/gameservers'));
    expect(posts.at(-1)!.url).toBe('/apis/catalyst.dev/v1alpha1/namespaces/games/gameservers');
    expect(JSON.parse(posts.at(-1)!.body!).spec.resources.memory).toBe('32Mi');
  });
});

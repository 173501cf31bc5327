// The create page: kind from discovery, name from the YAML, refuses an existing name, applies
// and moves to the new object's edit URL.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { cleanup, configure, fireEvent, render, screen, waitFor } from '@testing-library/react';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { Router } from 'wouter';
import { memoryLocation } from 'wouter/memory-location';

vi.mock('../lib/monaco', () => ({
  loadMonaco: () => new Promise(() => undefined),
  schemaModelUri: (kind: string, id: string) => `inmemory://catalyst/${id}.${kind.toLowerCase()}.yaml`,
}));

import EditYaml from './EditYaml';

configure({ asyncUtilTimeout: 8000 });

const discovery = {
  kind: 'APIResourceList',
  groupVersion: 'catalyst.dev/v1alpha1',
  resources: [
    { name: 'gameservers', singularName: 'gameserver', namespaced: true, kind: 'GameServer', verbs: ['patch'] },
    { name: 'gameservers/status', singularName: '', namespaced: true, kind: 'GameServer', verbs: ['get'] },
    { name: 'nodes', singularName: 'node', namespaced: false, kind: 'Node', verbs: ['patch'] },
  ],
};

let calls: { method: string; url: string; body?: string }[];
let exists: boolean;

beforeEach(() => {
  calls = [];
  exists = false;
  vi.stubGlobal(
    'fetch',
    vi.fn(async (url: string, init: RequestInit = {}) => {
      const method = init.method ?? 'GET';
      calls.push({ method, url, body: typeof init.body === 'string' ? init.body : undefined });
      const json = (status: number, body: unknown) =>
        new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });
      if (url === '/auth/v1/access-review') return json(200, { allowed: true });
      if (url === '/apis/catalyst.dev/v1alpha1') return json(200, discovery);
      if (method === 'GET')
        return exists
          ? json(200, { metadata: { name: 'mc', namespace: 'games' } })
          : json(404, { code: 404, reason: 'NotFound', message: 'gameservers "mc" not found' });
      if (method === 'PATCH')
        return json(201, { apiVersion: 'catalyst.dev/v1alpha1', kind: 'GameServer', metadata: { name: 'mc', namespace: 'games', resourceVersion: '9' }, spec: {} });
      return json(500, {});
    }),
  );
});

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

function page(props: { plural: string; namespace?: string; name?: string }) {
  const mem = memoryLocation({ path: '/yaml/gameservers/new', record: true });
  const qc = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  render(
    <QueryClientProvider client={qc}>
      <Router hook={mem.hook}>
        <EditYaml {...props} />
      </Router>
    </QueryClientProvider>,
  );
  return mem;
}

async function typeName() {
  await screen.findByRole('heading', { level: 1, name: 'New GameServer' });
  fireEvent.click(screen.getByLabelText('Plain text editor'));
  const box = screen.getByLabelText('YAML of the new GameServer') as HTMLTextAreaElement;
  expect(box.value).toContain('kind: GameServer');
  expect(box.value).toContain('namespace: default');
  fireEvent.change(box, { target: { value: box.value.replace('name: ""', 'name: mc').replace('namespace: default', 'namespace: games') } });
  const create = screen.getByRole('button', { name: 'Create' }) as HTMLButtonElement;
  await waitFor(() => expect(create.disabled).toBe(false));
  fireEvent.click(create);
}

describe('EditYaml', () => {
  it('creates from a skeleton with the namespace and name of the YAML, then opens it', async () => {
    const mem = page({ plural: 'gameservers' });
    await typeName();
    await waitFor(() => expect(mem.history).toContain('/yaml/gameservers/games/mc'));
    const patch = calls.find((c) => c.method === 'PATCH')!;
    expect(patch.url).toBe('/apis/catalyst.dev/v1alpha1/namespaces/games/gameservers/mc?fieldManager=panel');
    expect(patch.body).toContain('name: mc');
  });

  it('does not apply over an object that exists', async () => {
    exists = true;
    const mem = page({ plural: 'gameservers' });
    await typeName();
    const alert = await screen.findByRole('alert');
    expect(alert.textContent).toContain('GameServer games/mc already exists');
    expect(calls.some((c) => c.method === 'PATCH')).toBe(false);
    expect(mem.history).toEqual(['/yaml/gameservers/new']);
  });

  it('says so for a kind the API does not have, and for a namespaced object without namespace', async () => {
    page({ plural: 'widgets', name: 'x' });
    expect((await screen.findByRole('alert')).textContent).toContain('no kind called “widgets”');
    cleanup();
    page({ plural: 'gameservers', name: 'web' });
    expect((await screen.findByRole('alert')).textContent).toContain('GameServer objects live in a namespace');
  });
});

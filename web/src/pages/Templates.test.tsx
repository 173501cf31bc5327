// The Templates page against a fake API: the live list, delete with confirmation, and the egg
// import (a real egg from the Panel's seeders sent as is, warnings and YAML shown, created under
// the name the user gives).

import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { cleanup, configure, fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { Router } from 'wouter';
import { memoryLocation } from 'wouter/memory-location';

import { saveSession } from '../api/client';
import type { Template } from '../api/types';
import { Templates } from './Templates';

// the Panel's own Paper egg, as the converter's tests use it
const egg = readFileSync(resolve(process.cwd(), '../cli/tests/eggs/pterodactyl/egg-paper.json'), 'utf8');

const paper: Template = {
  apiVersion: 'catalyst.dev/v1alpha1',
  kind: 'Template',
  metadata: { name: 'paper', generation: 2 },
  spec: {
    description: 'High performance Spigot fork',
    images: [{ name: 'Java 21', image: 'ghcr.io/pterodactyl/yolks:java_21' }],
    variables: [{ name: 'SERVER_JARFILE' }, { name: 'BUILD_NUMBER' }],
    source: { format: 'PTDL_v2', name: 'Paper', author: 'parker@pterodactyl.io' },
  },
};

// two cores shared by several test runs: be patient, not flaky
configure({ asyncUtilTimeout: 8000 });
vi.setConfig({ testTimeout: 30_000 });

interface Call {
  url: string;
  method: string;
  body?: string;
  headers: Record<string, string>;
}
let calls: Call[];
let allowed: Record<string, boolean>;

function json(status: number, v: unknown) {
  return new Response(v === undefined ? null : JSON.stringify(v), { status, headers: { 'Content-Type': 'application/json' } });
}

beforeEach(() => {
  calls = [];
  allowed = { 'create templates': true, 'delete templates': true };
  saveSession({ accessToken: 't', expiresAt: new Date(Date.now() + 3600_000).toISOString(), username: 'u' });
  vi.stubGlobal(
    'fetch',
    vi.fn(async (input: string, init: RequestInit = {}) => {
      const c: Call = { url: String(input).replace(/[?&]fieldManager=panel$/, '').replace(/([?&])fieldManager=panel&/, '$1'), method: init.method ?? 'GET', body: init.body as string | undefined, headers: (init.headers ?? {}) as Record<string, string> };
      calls.push(c);
      if (c.url === '/auth/v1/access-review') {
        const q = JSON.parse(c.body!);
        return json(200, { allowed: allowed[`${q.verb} ${q.resource}`] ?? false });
      }
      if (c.url.includes('watch=true')) {
        const body = new ReadableStream({
          start(ctl) {
            init.signal?.addEventListener('abort', () => ctl.error(new DOMException('aborted', 'AbortError')));
          },
        });
        return new Response(body, { status: 200 });
      }
      if (c.url.startsWith('/convert/v1/egg')) {
        return json(200, {
          template: { ...paper, metadata: { name: 'paper' } },
          warnings: ['config.stop: ^C is sent as SIGINT', 'features: eula, java_version are not acted on'],
        });
      }
      if (c.method === 'DELETE') return json(409, { kind: 'Status', code: 409, message: 'template "paper" is used by 2 game servers' });
      if (c.method === 'POST' && c.url.endsWith('/templates')) {
        const o = JSON.parse(c.body!);
        if (o.metadata.name === 'paper') return json(409, { kind: 'Status', code: 409, reason: 'AlreadyExists', message: 'templates "paper" already exists' });
        return json(201, o);
      }
      if (c.url.includes('/templates')) return json(200, { items: [paper], metadata: { resourceVersion: '3' } });
      return json(404, { message: `no fake for ${c.url}` });
    }),
  );
});

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
  saveSession(null);
});

function show() {
  const loc = memoryLocation({ path: '/templates' });
  const qc = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  return render(
    <QueryClientProvider client={qc}>
      <Router hook={loc.hook} searchHook={loc.searchHook}>
        <Templates />
      </Router>
    </QueryClientProvider>,
  );
}

describe('Templates', () => {
  it('lists templates with their egg, and deletes only after confirming', async () => {
    show();
    const row = await screen.findByTestId('template-row-paper');
    expect(within(row).getByText('High performance Spigot fork')).toBeTruthy();
    expect(within(row).getByText('Java 21')).toBeTruthy();
    expect(within(row).getByText('Paper')).toBeTruthy();
    expect(within(row).getByRole('link', { name: 'Edit YAML of paper' }).getAttribute('href')).toBe('/yaml/templates/paper');
    expect((await screen.findByRole('link', { name: 'New template' })).getAttribute('href')).toBe('/yaml/templates/new');
    fireEvent.click(await within(row).findByRole('button', { name: 'Delete paper' }));
    expect(calls.some((c) => c.method === 'DELETE')).toBe(false);
    fireEvent.click(within(row).getByRole('button', { name: 'Yes, delete paper' }));
    await waitFor(() => expect(within(row).getByRole('alert').textContent).toContain('used by 2 game servers'));
  });

  it('hides delete and import from who may not', async () => {
    allowed = {};
    show();
    const row = await screen.findByTestId('template-row-paper');
    await waitFor(() => expect(calls.filter((c) => c.url === '/auth/v1/access-review')).toHaveLength(2));
    expect(within(row).queryByRole('button', { name: /Delete/ })).toBeNull();
    expect(screen.queryByText('Import a Pterodactyl egg')).toBeNull();
    expect(screen.queryByRole('link', { name: 'New template' })).toBeNull();
  });

  it('imports an egg: converts it, shows warnings and YAML, creates it under the chosen name', async () => {
    show();
    const area = await screen.findByLabelText('Egg JSON');
    fireEvent.change(area, { target: { value: egg } });
    fireEvent.change(screen.getByLabelText('Image map (optional)'), {
      target: { value: 'ghcr.io/pterodactyl/yolks:=mirror.local/yolks:\nghcr.io/x=oci-archive:/srv/x.tar' },
    });
    fireEvent.click(screen.getByRole('button', { name: 'Convert egg' }));
    await screen.findByText('config.stop: ^C is sent as SIGINT');
    const conv = calls.find((c) => c.url.startsWith('/convert/v1/egg'))!;
    expect(conv.method).toBe('POST');
    expect(conv.body).toBe(egg);
    expect(conv.headers['Content-Type']).toBe('application/json');
    const q = new URL(conv.url, 'https://x').searchParams;
    expect(q.getAll('imageMap')).toEqual(['ghcr.io/pterodactyl/yolks:=mirror.local/yolks:', 'ghcr.io/x=oci-archive:/srv/x.tar']);
    expect(q.has('name')).toBe(false);
    const pre = screen.getByLabelText('The Template as YAML');
    expect(pre.textContent).toContain('kind: Template');
    expect(pre.textContent).toContain('name: paper');

    // the name exists already: the API's message is shown
    fireEvent.click(screen.getByRole('button', { name: 'Create template' }));
    await screen.findByText('templates "paper" already exists');
    fireEvent.change(screen.getByLabelText('Name of the new Template'), { target: { value: 'paper-2' } });
    expect(pre.textContent).toContain('name: paper-2');
    fireEvent.click(screen.getByRole('button', { name: 'Create template' }));
    await screen.findByText(/Created the Template/);
    const post = calls.filter((c) => c.method === 'POST' && c.url.endsWith('/templates')).at(-1)!;
    expect(post.url).toBe('/apis/catalyst.dev/v1alpha1/templates');
    expect(JSON.parse(post.body!).metadata.name).toBe('paper-2');
  });

  it('refuses what is not JSON before asking the API', async () => {
    show();
    fireEvent.change(await screen.findByLabelText('Egg JSON'), { target: { value: '{not json' } });
    fireEvent.click(screen.getByRole('button', { name: 'Convert egg' }));
    await screen.findByText(/This is not JSON/);
    expect(calls.some((c) => c.url.startsWith('/convert'))).toBe(false);
  });
});

// The Variables tab against a fake API (fetch): the form from the Template, the local check, the
// dry run after quiet and its causes on the inputs, a conflict on save and the forced retry.

import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { cleanup, configure, fireEvent, render, screen, waitFor } from '@testing-library/react';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';

import { saveSession } from '../../api/client';
import type { GameServer, Template } from '../../api/types';
import Variables from './Variables';

const template: Template = {
  apiVersion: 'catalyst.dev/v1alpha1',
  kind: 'Template',
  metadata: { name: 'demo', generation: 3, resourceVersion: '5' },
  spec: {
    variables: [
      { name: 'MAX_PLAYERS', displayName: 'Max players', description: 'How many at once', default: '20', rules: 'required|integer|between:1,100', userViewable: true, userEditable: true },
      { name: 'MOTD', displayName: 'Message of the day', default: 'hello', rules: 'required|string|max:20', userViewable: true, userEditable: true },
      { name: 'LOCKED', displayName: 'Locked', default: 'x', rules: 'nullable', userViewable: true, userEditable: false },
      { name: 'SECRET', displayName: 'Secret', default: 's', rules: 'nullable', userViewable: false, userEditable: false },
    ],
  },
};

const gs: GameServer = {
  apiVersion: 'catalyst.dev/v1alpha1',
  kind: 'GameServer',
  metadata: { name: 'web', namespace: 'default', resourceVersion: '9' },
  spec: { template: 'demo', variables: { MOTD: 'hi', SECRET: 'kept' } },
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
let patchAnswers: ((c: Call) => Response)[];
let allowed: Record<string, boolean>;

function json(status: number, v: unknown, headers: Record<string, string> = {}) {
  return new Response(JSON.stringify(v), { status, headers: { 'Content-Type': 'application/json', ...headers } });
}

beforeEach(() => {
  calls = [];
  patchAnswers = [];
  allowed = { 'patch gameservers': true, 'update templates': false };
  saveSession({ accessToken: 't', expiresAt: new Date(Date.now() + 3600_000).toISOString(), username: 'u' });
  vi.stubGlobal(
    'fetch',
    vi.fn(async (input: string, init: RequestInit = {}) => {
      const c: Call = { url: String(input), method: init.method ?? 'GET', body: init.body as string | undefined, headers: (init.headers ?? {}) as Record<string, string> };
      calls.push(c);
      if (c.url === '/auth/v1/access-review') {
        const q = JSON.parse(c.body!);
        return json(200, { allowed: allowed[`${q.verb} ${q.resource}`] ?? false });
      }
      if (c.url.includes('/templates') && c.url.includes('watch=true')) {
        // a watch that stays open until aborted
        const body = new ReadableStream({
          start(ctl) {
            init.signal?.addEventListener('abort', () => ctl.error(new DOMException('aborted', 'AbortError')));
          },
        });
        return new Response(body, { status: 200 });
      }
      if (c.url.includes('/templates')) return json(200, { items: [template], metadata: { resourceVersion: '5' } });
      if (c.method === 'PATCH') {
        const next = patchAnswers.shift();
        return next ? next(c) : json(200, gs, { 'catalyst-changed': 'true' });
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

function show() {
  const qc = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  return render(
    <QueryClientProvider client={qc}>
      <Variables gs={gs} />
    </QueryClientProvider>,
  );
}

const patches = () => calls.filter((c) => c.method === 'PATCH');

describe('Variables', () => {
  it('builds the form from the Template and checks with the server after quiet', async () => {
    show();
    const players = (await screen.findByLabelText(/Max players/)) as HTMLInputElement;
    expect(players.value).toBe('20'); // the default: the server sets none
    expect((screen.getByLabelText(/Message of the day/) as HTMLInputElement).value).toBe('hi');
    expect(screen.queryByLabelText(/Secret/)).toBeNull(); // not userViewable, not an operator
    expect(screen.getByText('MAX_PLAYERS')).toBeTruthy();
    expect(screen.getByText('How many at once')).toBeTruthy();
    await waitFor(() => expect((screen.getByLabelText(/Locked/) as HTMLInputElement).disabled).toBe(true));

    // the browser's own check, at once and without asking the server
    fireEvent.change(players, { target: { value: '500' } });
    expect(players.getAttribute('aria-invalid')).toBe('true');
    expect(screen.getByRole('alert').textContent).toBe('must be between 1 and 100');

    // the server's answer lands on the input it names
    patchAnswers.push(() =>
      json(422, { kind: 'Status', code: 422, reason: 'Invalid', message: 'GameServer "web" is invalid', details: { causes: [{ field: 'spec.variables[MAX_PLAYERS]', message: 'the server says no' }] } }),
    );
    fireEvent.change(players, { target: { value: '50' } });
    expect(players.getAttribute('aria-invalid')).toBeNull();
    await waitFor(() => expect(screen.getByText('the server says no')).toBeTruthy(), { timeout: 8000 });
    expect(players.getAttribute('aria-invalid')).toBe('true');
    expect(players.getAttribute('aria-describedby')).toContain('var-MAX_PLAYERS-error');
    const dry = patches();
    expect(dry).toHaveLength(1); // 500 was never sent: only the quiet value
    expect(dry[0].url).toContain('fieldManager=panel');
    expect(dry[0].url).toContain('dryRun=All');
    expect(dry[0].headers['Content-Type']).toBe('application/apply-patch+yaml');
    expect(JSON.parse(dry[0].body!)).toEqual({
      apiVersion: 'catalyst.dev/v1alpha1',
      kind: 'GameServer',
      metadata: { name: 'web', namespace: 'default' },
      spec: { variables: { MOTD: 'hi', SECRET: 'kept', MAX_PLAYERS: '50' } },
    });
  });

  it('shows a conflict and saves again with force', async () => {
    show();
    const motd = (await screen.findByLabelText(/Message of the day/)) as HTMLInputElement;
    await waitFor(() => expect(motd.disabled).toBe(false));
    patchAnswers.push(() => json(200, gs)); // the dry run
    fireEvent.change(motd, { target: { value: 'welcome' } });
    await waitFor(() => expect(patches()).toHaveLength(1), { timeout: 8000 });
    const message = 'Apply failed with 1 conflict(s): spec.variables.MOTD (conflict with "catalystctl"). Re-apply with force to take ownership, or leave these fields out.';
    patchAnswers.push(() =>
      json(409, { kind: 'Status', code: 409, reason: 'Conflict', message, details: { causes: [{ field: 'spec.variables.MOTD', message: 'conflict with "catalystctl"' }] } }),
    );
    fireEvent.click(screen.getByRole('button', { name: 'Save variables' }));
    await waitFor(() => expect(screen.getByText(message)).toBeTruthy());
    expect(screen.getByText(/Saving takes it over: conflict with "catalystctl"/)).toBeTruthy();
    expect(patches()[1].url).not.toContain('dryRun');
    expect(patches()[1].url).not.toContain('force');
    fireEvent.click(screen.getByRole('button', { name: 'Save anyway (take ownership)' }));
    await waitFor(() => expect(screen.getByText(/Saved\./)).toBeTruthy());
    expect(patches()[2].url).toContain('force=true');
    expect(JSON.parse(patches()[2].body!).spec.variables.MOTD).toBe('welcome');
  });

  it('is read-only without patch permission', async () => {
    allowed['patch gameservers'] = false;
    show();
    await screen.findByText('You may look at these variables but not change them.');
    expect((screen.getByLabelText(/Max players/) as HTMLInputElement).disabled).toBe(true);
    expect(screen.queryByRole('button', { name: 'Save variables' })).toBeNull();
  });

  it('shows every variable to an operator', async () => {
    allowed['update templates'] = true;
    show();
    const secret = (await screen.findByLabelText(/Secret/)) as HTMLInputElement;
    expect(secret.value).toBe('kept');
    await waitFor(() => expect(secret.disabled).toBe(false));
  });
});

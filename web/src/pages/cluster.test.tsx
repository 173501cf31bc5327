// The cluster and access pages against a fake API: what they ask, what they show, what they
// hide when the API's access review says no, and that an API key's secret stays out of caches.

import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { act, cleanup, fireEvent, render, screen, waitFor } from '@testing-library/react';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import type { ReactNode } from 'react';

import { saveSession } from '../api/client';
import { Nodes } from './Nodes';
import { ApiKeys } from './ApiKeys';
import { Roles } from './Roles';
import { Account } from './Account';
import { AlertRules } from './AlertRules';
import { Users } from './Users';

interface Call {
  method: string;
  url: string;
  body?: string;
  contentType?: string;
}

let calls: Call[] = [];
let allowed = new Set<string>();
type Handler = (c: Call) => { status?: number; json?: unknown } | undefined;
let handlers: Handler[] = [];

function json(status: number, v: unknown): Response {
  return new Response(v === undefined ? null : JSON.stringify(v), { status, headers: { 'Content-Type': 'application/json' } });
}

beforeEach(() => {
  calls = [];
  allowed = new Set();
  handlers = [];
  saveSession({ accessToken: 'token', expiresAt: '9999-12-31T00:00:00Z', username: 'alice' });
  vi.stubGlobal(
    'fetch',
    vi.fn(async (input: string, init: RequestInit = {}) => {
      const c: Call = {
        method: init.method ?? 'GET',
        url: String(input),
        body: typeof init.body === 'string' ? init.body : undefined,
        contentType: (init.headers as Record<string, string> | undefined)?.['Content-Type'],
      };
      calls.push(c);
      if (c.url.includes('watch=true')) {
        // a watch that stays open until the page lets it go
        return new Promise((_, reject) => init.signal?.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError'))));
      }
      if (c.url === '/auth/v1/access-review') {
        const q = JSON.parse(c.body ?? '{}');
        return json(200, { allowed: allowed.has(`${q.verb} ${q.resource}`) });
      }
      for (const h of handlers) {
        const r = h(c);
        if (r) return json(r.status ?? 200, r.json);
      }
      return json(404, { kind: 'Status', code: 404, message: `no fake for ${c.method} ${c.url}` });
    }),
  );
});

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
  localStorage.clear();
});

function wrap(ui: ReactNode) {
  const qc = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  render(<QueryClientProvider client={qc}>{ui}</QueryClientProvider>);
  return qc;
}

const list = (items: unknown[]) => ({ json: { items, metadata: { resourceVersion: '5' } } });
const G = '/apis/catalyst.dev/v1alpha1';

const NODE = {
  metadata: { name: 'n1', resourceVersion: '4' },
  spec: { unschedulable: false },
  status: {
    conditions: [{ type: 'Ready', status: 'True' }],
    lastHeartbeatTime: new Date().toISOString(),
    capacity: { cpu: '4', memory: '8Gi' },
    allocatable: { cpu: '4', memory: '8Gi' },
    allocated: { cpu: '2', memory: '2Gi' },
  },
};

describe('Nodes', () => {
  it('shows nodes live with their servers, and cordons by merge patch when allowed', async () => {
    allowed = new Set(['list nodes', 'patch nodes', 'list gameservers']);
    handlers.push((c) => (c.method === 'GET' && c.url.startsWith(`${G}/nodes`) ? list([NODE]) : undefined));
    handlers.push((c) =>
      c.method === 'GET' && c.url.startsWith(`${G}/gameservers`)
        ? list([
            { metadata: { name: 'a', namespace: 'd', resourceVersion: '2' }, status: { nodeName: 'n1' } },
            { metadata: { name: 'b', namespace: 'd', resourceVersion: '3' }, status: { nodeName: 'n1' } },
          ])
        : undefined,
    );
    handlers.push((c) => (c.method === 'PATCH' ? { json: { ...NODE, spec: { unschedulable: true } } } : undefined));
    wrap(<Nodes />);
    const row = await screen.findByTestId('node-row-n1');
    expect(row.textContent).toContain('Ready');
    await waitFor(() => expect(row.textContent).toContain('2 / 4'));
    await waitFor(() => expect(row.querySelectorAll('td')[6].textContent).toBe('2'));
    fireEvent.click(await screen.findByRole('button', { name: 'Cordon n1' }));
    await waitFor(() => expect(calls.some((c) => c.method === 'PATCH')).toBe(true));
    const patch = calls.find((c) => c.method === 'PATCH')!;
    expect(patch.url).toBe(`${G}/nodes/n1?fieldManager=panel`);
    expect(patch.contentType).toBe('application/merge-patch+json');
    expect(JSON.parse(patch.body!)).toEqual({ spec: { unschedulable: true } });
  });

  it('hides cordon without patch rights and counts no servers it may not list', async () => {
    allowed = new Set(['list nodes']);
    handlers.push((c) => (c.method === 'GET' && c.url.startsWith(`${G}/nodes`) ? list([NODE]) : undefined));
    wrap(<Nodes />);
    const row = await screen.findByTestId('node-row-n1');
    await waitFor(() => expect(calls.filter((c) => c.url === '/auth/v1/access-review').length).toBeGreaterThanOrEqual(3));
    expect(screen.queryByRole('button', { name: /Cordon/ })).toBeNull();
    expect(calls.some((c) => c.url.startsWith(`${G}/gameservers`))).toBe(false);
    expect(row.querySelectorAll('td')[6].textContent).toBe('—');
  });
});

describe('ApiKeys', () => {
  it('lists only my keys without list rights, and shows a new secret once, outside every cache', async () => {
    handlers.push((c) => (c.url === '/auth/v1/whoami' ? { json: { kind: 'user', name: 'alice', user: 'alice', groups: [] } } : undefined));
    handlers.push((c) =>
      c.method === 'GET' && c.url.startsWith(`${G}/apikeys`)
        ? list([{ metadata: { name: 'old', resourceVersion: '3' }, spec: { owner: 'alice', roles: [{ role: 'viewer', namespace: 'games' }] } }])
        : undefined,
    );
    handlers.push((c) =>
      c.method === 'POST' && c.url.startsWith(`${G}/apikeys`)
        ? { status: 201, json: { metadata: { name: 'ci' }, spec: JSON.parse(c.body!).spec, status: { token: 'ck_SECRET123', tokenPrefix: 'ck_SEC' } } }
        : undefined,
    );
    const qc = wrap(<ApiKeys />);
    const row = await screen.findByTestId('apikey-row-old');
    expect(row.textContent).toContain('viewer@games');
    const get = calls.find((c) => c.method === 'GET' && c.url.startsWith(`${G}/apikeys`))!;
    expect(decodeURIComponent(get.url)).toContain('fieldSelector=spec.owner=alice');
    // my own key may be revoked (self-service), even though the access review says no
    expect(screen.getByRole('button', { name: 'Revoke old' })).toBeTruthy();

    fireEvent.click(screen.getByRole('button', { name: 'New API key' }));
    fireEvent.change(screen.getByLabelText('Key name'), { target: { value: 'ci' } });
    fireEvent.change(screen.getByLabelText('Role 1'), { target: { value: 'viewer' } });
    fireEvent.change(screen.getByLabelText('Namespace of role 1'), { target: { value: 'games' } });
    await act(async () => {
      fireEvent.click(screen.getByRole('button', { name: 'Create API key' }));
    });
    const secret = await screen.findByTestId('apikey-secret');
    expect(secret.textContent).toBe('ck_SECRET123');
    expect(screen.getByText(/it will not be shown again/)).toBeTruthy();
    const post = calls.find((c) => c.method === 'POST' && c.url.startsWith(`${G}/apikeys`))!;
    const body = JSON.parse(post.body!);
    expect(body.spec.owner).toBe('alice');
    expect(body.spec.roles).toEqual([{ role: 'viewer', namespace: 'games' }]);
    expect(Date.parse(body.spec.expiresAt)).toBeGreaterThan(Date.now() + 89 * 86400e3);

    const cached = JSON.stringify(
      [...qc.getQueryCache().getAll().map((q) => q.state.data), ...qc.getMutationCache().getAll().map((m) => m.state.data)],
      (_k, v) => (v instanceof Map ? [...v.entries()] : v),
    );
    expect(cached).not.toContain('ck_SECRET123');
    expect(JSON.stringify({ ...localStorage })).not.toContain('ck_SECRET123');

    fireEvent.click(screen.getByRole('button', { name: /close/ }));
    await waitFor(() => expect(screen.queryByTestId('apikey-secret')).toBeNull());
  });
});

describe('Roles', () => {
  it('marks built-in roles read-only and shows the API refusing an escalation', async () => {
    allowed = new Set(['list roles', 'delete roles', 'list rolebindings', 'create rolebindings']);
    handlers.push((c) =>
      c.method === 'GET' && c.url.startsWith(`${G}/roles`)
        ? list([
            { metadata: { name: 'admin', labels: { 'catalyst.dev/builtin': 'true' }, resourceVersion: '1' }, spec: { rules: [{ resources: ['*'], verbs: ['*'] }] } },
            { metadata: { name: 'mine', resourceVersion: '2' }, spec: { rules: [{ resources: ['gameservers'], verbs: ['get'] }] } },
          ])
        : undefined,
    );
    handlers.push((c) => (c.method === 'GET' && c.url.startsWith(`${G}/rolebindings`) ? list([]) : undefined));
    handlers.push((c) =>
      c.method === 'POST' && c.url.startsWith(`${G}/namespaces/default/rolebindings`)
        ? { status: 403, json: { kind: 'Status', code: 403, reason: 'Forbidden', message: 'you may not grant role admin: you do not hold it' } }
        : undefined,
    );
    wrap(<Roles />);
    const admin = await screen.findByTestId('role-row-admin');
    expect(admin.textContent).toContain('Built-in (read-only)');
    expect(screen.queryByRole('button', { name: 'Delete admin' })).toBeNull();
    await waitFor(() => expect(screen.getByRole('button', { name: 'Delete mine' })).toBeTruthy());
    fireEvent.click(screen.getByRole('button', { name: 'Show rules of mine' }));
    expect(screen.getByRole('table', { name: 'Rules of mine' }).textContent).toContain('gameservers');

    fireEvent.click(await screen.findByRole('button', { name: 'New binding' }));
    fireEvent.change(screen.getByLabelText('Role'), { target: { value: 'admin' } });
    fireEvent.change(screen.getByLabelText('Subject name'), { target: { value: 'bob' } });
    fireEvent.change(screen.getByLabelText('Only these objects'), { target: { value: 'survival' } });
    await act(async () => {
      fireEvent.click(screen.getByRole('button', { name: 'Create binding' }));
    });
    expect((await screen.findAllByRole('alert')).some((a) => a.textContent?.includes('you may not grant role admin'))).toBe(true);
    const post = calls.find((c) => c.method === 'POST' && c.url.includes('rolebindings'))!;
    expect(JSON.parse(post.body!)).toEqual({
      apiVersion: 'catalyst.dev/v1alpha1',
      kind: 'RoleBinding',
      metadata: { name: 'bob-admin-survival', namespace: 'default' },
      spec: { roleRef: 'admin', subjects: [{ kind: 'User', name: 'bob' }], resourceNames: ['survival'] },
    });
  });
});

describe('Account', () => {
  it('enrols TOTP showing the secret in groups of four, and confirms with a code', async () => {
    handlers.push((c) => (c.url === '/auth/v1/whoami' ? { json: { kind: 'user', name: 'alice', user: 'alice', groups: ['staff'] } } : undefined));
    let on = false;
    handlers.push((c) => (c.url === `${G}/users/alice` ? { json: { metadata: { name: 'alice' }, spec: {}, status: { totpEnabled: on } } } : undefined));
    handlers.push((c) =>
      c.method === 'POST' && c.url === '/auth/v1/totp'
        ? { json: { secret: 'JBSWY3DPEHPK3PXP', otpauthUrl: 'otpauth://totp/Catalyst:alice?secret=JBSWY3DPEHPK3PXP' } }
        : undefined,
    );
    handlers.push((c) => {
      if (c.method === 'POST' && c.url === '/auth/v1/totp/confirm') {
        on = true;
        return { status: 204 };
      }
      return undefined;
    });
    wrap(<Account />);
    fireEvent.click(await screen.findByRole('button', { name: 'Set up two-factor sign-in' }));
    expect((await screen.findByTestId('totp-secret')).textContent).toBe('JBSW Y3DP EHPK 3PXP');
    expect(screen.getByText(/^otpauth:\/\//)).toBeTruthy();
    fireEvent.change(screen.getByLabelText('Code from the app'), { target: { value: '123456' } });
    await act(async () => {
      fireEvent.click(screen.getByRole('button', { name: 'Turn on two-factor sign-in' }));
    });
    await waitFor(() => expect(screen.getByTestId('totp-state').textContent).toBe('on'));
    expect(JSON.parse(calls.find((c) => c.url === '/auth/v1/totp/confirm')!.body!)).toEqual({ code: '123456' });
    expect(screen.getByRole('button', { name: 'Turn off two-factor sign-in' })).toBeTruthy();
  });

  it('puts a wrong current password beside its field', async () => {
    handlers.push((c) => (c.url === '/auth/v1/whoami' ? { json: { kind: 'user', name: 'alice', user: 'alice' } } : undefined));
    handlers.push((c) => (c.url === `${G}/users/alice` ? { json: { metadata: { name: 'alice' }, status: {} } } : undefined));
    handlers.push((c) =>
      c.url === '/auth/v1/password' ? { status: 403, json: { kind: 'Status', code: 403, message: 'the current password is wrong' } } : undefined,
    );
    wrap(<Account />);
    fireEvent.change(await screen.findByLabelText('Current password'), { target: { value: 'nope-nope-nope' } });
    fireEvent.change(screen.getByLabelText('New password'), { target: { value: 'a-new-password-1' } });
    fireEvent.change(screen.getByLabelText('New password again'), { target: { value: 'a-new-password-1' } });
    await act(async () => {
      fireEvent.click(screen.getByRole('button', { name: 'Change password' }));
    });
    const err = await screen.findByText('the current password is wrong');
    expect(err.id).toBe('acc-current-error');
    expect(JSON.parse(calls.find((c) => c.url === '/auth/v1/password')!.body!)).toEqual({
      currentPassword: 'nope-nope-nope',
      password: 'a-new-password-1',
    });
  });
});

describe('AlertRules', () => {
  it('lists one namespace when listing everywhere is refused, and puts API causes beside the form inputs', async () => {
    allowed = new Set(['create alertrules']);
    handlers.push((c) =>
      c.method === 'GET' && c.url.startsWith(`${G}/namespaces/default/alertrules`)
        ? list([
            {
              metadata: { name: 'mem', namespace: 'default', resourceVersion: '3' },
              spec: { selector: { game: 'mc' }, condition: { metric: 'Memory', operator: '>', threshold: 90 }, for: '5m' },
              status: { firing: true, firingCount: 1, alerts: [{ target: 'gameserver/a', state: 'Firing', since: new Date().toISOString() }] },
            },
          ])
        : undefined,
    );
    handlers.push((c) =>
      c.method === 'POST' && c.url.includes('alertrules')
        ? {
            status: 422,
            json: {
              kind: 'Status',
              code: 422,
              reason: 'Invalid',
              message: 'AlertRule default/x is invalid',
              details: { causes: [{ field: 'spec.condition.threshold', message: 'must be 0 to 100' }] },
            },
          }
        : undefined,
    );
    wrap(<AlertRules />);
    const row = await screen.findByTestId('alertrule-row-default/mem');
    expect(row.textContent).toContain('servers with game=mc');
    expect(row.textContent).toContain('Memory > 90% for 5m');
    expect(row.textContent).toContain('Firing (1)');
    expect(calls.some((c) => c.method === 'GET' && c.url.startsWith(`${G}/alertrules`))).toBe(false);
    expect(screen.getByLabelText('Show namespace')).toBeTruthy();
    // no patch or delete rights: no silence or delete buttons
    expect(screen.queryByRole('button', { name: /Silence mem/ })).toBeNull();
    expect(screen.queryByRole('button', { name: 'Delete mem' })).toBeNull();

    fireEvent.click(await screen.findByRole('button', { name: 'New alert rule' }));
    fireEvent.change(screen.getByLabelText('Name'), { target: { value: 'x' } });
    fireEvent.change(screen.getByLabelText('Threshold (percent)'), { target: { value: '150' } });
    await act(async () => {
      fireEvent.submit(screen.getByRole('button', { name: 'Create alert rule' }).closest('form')!);
    });
    const err = await screen.findByText('must be 0 to 100');
    expect(err.id).toBe('ar-threshold-error');
    const post = calls.find((c) => c.method === 'POST' && c.url.includes('alertrules'))!;
    expect(post.url).toBe(`${G}/namespaces/default/alertrules?fieldManager=panel`);
    expect(JSON.parse(post.body!).spec.condition).toEqual({ metric: 'Memory', operator: '>', threshold: 150 });
  });
});

describe('Users', () => {
  it('creates a user then sets the password, and hides what the API refuses', async () => {
    allowed = new Set(['list users', 'create users', 'create users/password']);
    handlers.push((c) =>
      c.method === 'GET' && c.url.startsWith(`${G}/users`)
        ? list([{ metadata: { name: 'bob', resourceVersion: '2' }, spec: { email: 'bob@x.org', groups: ['staff'] }, status: { totpEnabled: true } }])
        : undefined,
    );
    handlers.push((c) => (c.method === 'POST' && c.url.startsWith(`${G}/users?`) ? { status: 201, json: JSON.parse(c.body!) } : undefined));
    handlers.push((c) => (c.method === 'POST' && c.url === `${G}/users/carol/password` ? { status: 204 } : undefined));
    wrap(<Users />);
    const row = await screen.findByTestId('user-row-bob');
    expect(row.textContent).toContain('bob@x.org');
    expect(row.querySelectorAll('td')[5].textContent).toBe('on');
    await waitFor(() => expect(screen.getByRole('button', { name: 'Set password of bob' })).toBeTruthy());
    expect(screen.queryByRole('button', { name: /Disable bob/ })).toBeNull();
    expect(screen.queryByRole('button', { name: 'Delete bob' })).toBeNull();

    fireEvent.click(screen.getByRole('button', { name: 'New user' }));
    fireEvent.change(screen.getByLabelText('User name'), { target: { value: 'carol' } });
    fireEvent.change(screen.getByLabelText('Groups'), { target: { value: 'staff, players' } });
    fireEvent.change(screen.getByLabelText('Password'), { target: { value: 'long-enough-pw' } });
    await act(async () => {
      fireEvent.click(screen.getByRole('button', { name: 'Create user' }));
    });
    await waitFor(() => expect(calls.some((c) => c.url === `${G}/users/carol/password`)).toBe(true));
    const create = calls.find((c) => c.method === 'POST' && c.url.startsWith(`${G}/users?`))!;
    expect(JSON.parse(create.body!)).toEqual({
      apiVersion: 'catalyst.dev/v1alpha1',
      kind: 'User',
      metadata: { name: 'carol' },
      spec: { groups: ['staff', 'players'] },
    });
    expect(JSON.parse(calls.find((c) => c.url === `${G}/users/carol/password`)!.body!)).toEqual({ password: 'long-enough-pw' });
    await waitFor(() => expect(screen.queryByRole('button', { name: 'Create user' })).toBeNull());
  });
});

// The editor's flows against a fake API (fetch), with Monaco left unloaded: the plain text
// editor is the same text the buttons send.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { cleanup, configure, fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';

vi.mock('../lib/monaco', () => ({
  loadMonaco: () => new Promise(() => undefined),
  schemaModelUri: (kind: string, id: string) => `inmemory://catalyst/${id}.${kind.toLowerCase()}.yaml`,
}));

import { webServer } from '../lib/fixtures/gameserver';
import type { KObject } from '../api/types';
import { YamlEditor } from './YamlEditor';

interface Call {
  method: string;
  url: string;
  body?: string;
  contentType?: string;
}

// two shared cores: give async answers time
configure({ asyncUtilTimeout: 8000 });

let calls: Call[];
let answer: (c: Call) => { status: number; body: unknown };

beforeEach(() => {
  calls = [];
  vi.stubGlobal(
    'fetch',
    vi.fn(async (url: string, init: RequestInit = {}) => {
      const c: Call = {
        method: init.method ?? 'GET',
        url,
        body: typeof init.body === 'string' ? init.body : undefined,
        contentType: (init.headers as Record<string, string> | undefined)?.['Content-Type'],
      };
      calls.push(c);
      const a = url === '/auth/v1/access-review' ? { status: 200, body: { allowed: true } } : answer(c);
      return new Response(JSON.stringify(a.body), { status: a.status, headers: { 'Content-Type': 'application/json' } });
    }),
  );
  // jsdom has no showModal
  HTMLDialogElement.prototype.showModal ??= function (this: HTMLDialogElement) {
    this.setAttribute('open', '');
  };
  HTMLDialogElement.prototype.close ??= function (this: HTMLDialogElement) {
    this.removeAttribute('open');
  };
});

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

async function show(live: KObject, onApplied = vi.fn(), ready = true) {
  const qc = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  const ui = (obj: KObject) => (
    <QueryClientProvider client={qc}>
      <YamlEditor kind="GameServer" plural="gameservers" namespace="default" name="web" live={obj} onApplied={onApplied} />
    </QueryClientProvider>
  );
  const r = render(ui(live));
  fireEvent.click(screen.getByLabelText('Plain text editor'));
  // the buttons wait for the API's access answer
  if (ready) await waitFor(() => expect((screen.getByRole('button', { name: 'Apply' }) as HTMLButtonElement).disabled).toBe(false));
  return { ...r, rerender: (obj: KObject) => r.rerender(ui(obj)), onApplied };
}

function edit(from: string, to: string) {
  const box = screen.getByLabelText('YAML of GameServer default/web') as HTMLTextAreaElement;
  expect(box.value).toContain(from);
  fireEvent.change(box, { target: { value: box.value.replace(from, to) } });
}

const conflict = {
  kind: 'Status',
  status: 'Failure',
  code: 409,
  reason: 'Conflict',
  message:
    'Apply failed with 1 conflict(s): spec.variables.MOTD (conflict with "catalystctl"). Re-apply with force to take ownership, or leave these fields out.',
  details: { causes: [{ field: 'spec.variables.MOTD', message: 'conflict with "catalystctl"' }] },
};

describe('YamlEditor', () => {
  it('shows the live object without server fields, reviews a change with a dry-run apply', async () => {
    answer = () => ({ status: 200, body: { ...webServer('hello'), metadata: { ...webServer().metadata, resourceVersion: '413' } } });
    await show(webServer());
    const box = screen.getByLabelText('YAML of GameServer default/web') as HTMLTextAreaElement;
    expect(box.value).not.toContain('managedFields');
    expect(box.value).not.toContain('status:');
    expect(box.value).not.toContain('resourceVersion');
    edit("MOTD: Catalyst's demo", 'MOTD: hello');
    fireEvent.click(screen.getByRole('button', { name: 'Review changes' }));
    const summary = await screen.findByTestId('diff-summary');
    expect(summary.textContent).toContain('2 lines changed: spec.variables.MOTD');
    expect(summary.textContent).toContain('managed by catalystctl');
    expect(screen.getByTestId('diff-lines').textContent).toContain("-     MOTD: Catalyst's demo");
    expect(screen.getByTestId('diff-lines').textContent).toContain('+     MOTD: hello');
    const patch = calls.find((c) => c.method === 'PATCH')!;
    expect(patch.url).toBe('/apis/catalyst.dev/v1alpha1/namespaces/default/gameservers/web?fieldManager=panel&dryRun=All');
    expect(patch.contentType).toBe('application/apply-patch+yaml');
    expect(patch.body).toContain('MOTD: hello');
    expect(patch.body).toContain('apiVersion: catalyst.dev/v1alpha1');
  });

  it('shows a conflict with who owns the field, and forces on request', async () => {
    const forced = webServer('mine', 'panel');
    forced.metadata.resourceVersion = '420';
    answer = (c) => (c.url.includes('force=true') ? { status: 200, body: forced } : { status: 409, body: conflict });
    const { onApplied } = await show(webServer());
    edit("MOTD: Catalyst's demo", 'MOTD: mine');
    fireEvent.click(screen.getByRole('button', { name: 'Apply' }));
    const dialog = await screen.findByRole('dialog', { name: 'Fields managed by someone else' });
    expect(dialog.textContent).toContain('spec.variables.MOTD is managed by catalystctl');
    expect(document.activeElement).toBe(within(dialog).getByRole('button', { name: 'Cancel' }));
    fireEvent.click(within(dialog).getByRole('button', { name: 'Force apply (take ownership)' }));
    await waitFor(() => expect(screen.queryByRole('dialog')).toBeNull());
    const result = screen.getByTestId('apply-result');
    expect(result.textContent).toContain('spec.variables.MOTD is now managed by panel (was catalystctl)');
    expect(calls.filter((c) => c.method === 'PATCH').map((c) => c.url)).toEqual([
      '/apis/catalyst.dev/v1alpha1/namespaces/default/gameservers/web?fieldManager=panel',
      '/apis/catalyst.dev/v1alpha1/namespaces/default/gameservers/web?fieldManager=panel&force=true',
    ]);
    expect(onApplied).toHaveBeenCalledWith(forced);
    expect((screen.getByLabelText('YAML of GameServer default/web') as HTMLTextAreaElement).value).toContain('MOTD: mine');
  });

  it('closes the conflict on Escape and keeps the text', async () => {
    answer = () => ({ status: 409, body: conflict });
    await show(webServer());
    edit("MOTD: Catalyst's demo", 'MOTD: mine');
    fireEvent.click(screen.getByRole('button', { name: 'Apply' }));
    const dialog = await screen.findByRole('dialog');
    // what a browser does on Escape: cancel, then close
    fireEvent(dialog, new Event('cancel', { cancelable: true }));
    (dialog as HTMLDialogElement).close();
    fireEvent(dialog, new Event('close'));
    await waitFor(() => expect(screen.queryByRole('dialog')).toBeNull());
    expect((screen.getByLabelText('YAML of GameServer default/web') as HTMLTextAreaElement).value).toContain('MOTD: mine');
  });

  it('shows other errors with their message and fields', async () => {
    answer = () => ({
      status: 422,
      body: {
        code: 422,
        reason: 'Invalid',
        message: 'GameServer "web" is invalid: spec.variables[MOTD]: must be one line',
        details: { causes: [{ field: 'spec.variables[MOTD]', message: 'must be one line' }] },
      },
    });
    await show(webServer());
    edit("MOTD: Catalyst's demo", 'MOTD: "a\\nb"');
    fireEvent.click(screen.getByRole('button', { name: 'Apply' }));
    const alert = await screen.findByRole('alert');
    expect(alert.textContent).toContain('is invalid');
    expect(alert.textContent).toContain('spec.variables[MOTD]: must be one line');
    expect(screen.queryByRole('dialog')).toBeNull();
  });

  it('follows the live object while untouched, and says who changed it while edited', async () => {
    answer = () => ({ status: 500, body: {} });
    const { rerender } = await show(webServer());
    const box = () => screen.getByLabelText('YAML of GameServer default/web') as HTMLTextAreaElement;
    const v2 = webServer('two');
    v2.metadata.resourceVersion = '500';
    rerender(v2);
    await waitFor(() => expect(box().value).toContain('MOTD: two'));
    expect(screen.queryByText(/changed on the server/)).toBeNull();
    edit('MOTD: two', 'MOTD: mine');
    const v3 = webServer('three');
    v3.metadata.resourceVersion = '600';
    v3.metadata.managedFields![0].time = '2026-11-30T22:00:00Z';
    rerender(v3);
    const note = await screen.findByText(/changed on the server by catalystctl/);
    expect(note.textContent).toContain('spec.variables.MOTD');
    expect(box().value).toContain('MOTD: mine');
    // a status-only change says nothing
    fireEvent.click(screen.getByRole('button', { name: /Reload from server/ }));
    await waitFor(() => expect(box().value).toContain('MOTD: three'));
    const v4 = webServer('three');
    v4.metadata.resourceVersion = '700';
    v4.status = { phase: 'Stopped' };
    rerender(v4);
    expect(screen.queryByText(/changed on the server/)).toBeNull();
  });

  it('is read-only when the API refuses patch', async () => {
    vi.stubGlobal(
      'fetch',
      vi.fn(async () => new Response(JSON.stringify({ allowed: false }), { status: 200 })),
    );
    await show(webServer(), vi.fn(), false);
    await screen.findByText(/You may not change this GameServer/);
    expect((screen.getByLabelText('YAML of GameServer default/web') as HTMLTextAreaElement).readOnly).toBe(true);
    expect((screen.getByRole('button', { name: 'Apply' }) as HTMLButtonElement).disabled).toBe(true);
    expect((screen.getByRole('button', { name: 'Review changes' }) as HTMLButtonElement).disabled).toBe(true);
  });
});

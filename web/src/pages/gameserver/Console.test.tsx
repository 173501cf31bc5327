// The console against a fake API and WebSocket (xterm itself is replaced: jsdom has no canvas):
// ticket → WebSocket URL, lines into the plain-text copy, commands as frames, history on the
// arrow keys, reconnect after a close nobody asked for.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { act, cleanup, fireEvent, render, screen } from '@testing-library/react';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';

vi.mock('@xterm/xterm', () => ({
  Terminal: class {
    options: Record<string, unknown> = {};
    written: string[] = [];
    loadAddon() {}
    open() {}
    write(s: string) {
      this.written.push(s);
    }
    reset() {}
    dispose() {}
  },
}));
vi.mock('@xterm/addon-fit', () => ({ FitAddon: class { fit() {} } }));

import Console from './Console';

class FakeSocket {
  static all: FakeSocket[] = [];
  static OPEN = 1;
  readyState = 0;
  sent: string[] = [];
  onopen: (() => void) | null = null;
  onmessage: ((m: { data: string }) => void) | null = null;
  onclose: ((e: { reason: string }) => void) | null = null;
  constructor(public url: string) {
    FakeSocket.all.push(this);
  }
  send(s: string) {
    this.sent.push(s);
  }
  close() {
    this.readyState = 3;
  }
  open() {
    this.readyState = 1;
    this.onopen?.();
  }
  frame(event: string, data: unknown) {
    this.onmessage?.({ data: JSON.stringify({ event, data }) });
  }
}

const gs = { kind: 'GameServer', metadata: { name: 'web', namespace: 'default' }, status: { phase: 'Running' } };
let tickets = 0;

beforeEach(() => {
  FakeSocket.all = [];
  tickets = 0;
  localStorage.clear();
  vi.stubGlobal('WebSocket', FakeSocket);
  vi.stubGlobal('ResizeObserver', class { observe() {} disconnect() {} });
  vi.stubGlobal(
    'fetch',
    vi.fn((url: string) => {
      const body =
        url === '/auth/v1/tickets'
          ? { ticket: `ticket_${++tickets}`, expiresAt: '', path: '/apis/catalyst.dev/v1alpha1/namespaces/default/gameservers/web/console' }
          : { allowed: true };
      return Promise.resolve(new Response(JSON.stringify(body), { status: 200 }));
    }),
  );
});

afterEach(() => {
  cleanup();
  vi.useRealTimers();
  vi.unstubAllGlobals();
});

function show() {
  const qc = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  return render(
    <QueryClientProvider client={qc}>
      <Console gs={gs} />
    </QueryClientProvider>,
  );
}

async function socket(n: number): Promise<FakeSocket> {
  await vi.waitFor(() => expect(FakeSocket.all.length).toBeGreaterThanOrEqual(n));
  return FakeSocket.all[n - 1];
}

describe('Console', () => {
  it('opens the console with a ticket, shows lines and sends commands with history', async () => {
    show();
    const ws = await socket(1);
    expect(ws.url).toBe(`ws://${location.host}/apis/catalyst.dev/v1alpha1/namespaces/default/gameservers/web/console?ticket=ticket_1&tail=200`);
    act(() => {
      ws.open();
      ws.frame('phase', 'Running');
      ws.frame('line', '\x1b[32mhello\x1b[0m world');
    });
    expect(screen.getByTestId('console-status').textContent).toBe('connected (server Running)');
    await vi.waitFor(() => expect(screen.getByTestId('console-text').textContent).toBe('hello world'));

    const input = (await screen.findByLabelText('Command')) as HTMLInputElement;
    fireEvent.change(input, { target: { value: 'say one' } });
    fireEvent.submit(input.form!);
    fireEvent.change(input, { target: { value: 'say two' } });
    fireEvent.click(screen.getByRole('button', { name: 'Send' }));
    expect(ws.sent.map((s) => JSON.parse(s))).toEqual([
      { event: 'command', data: 'say one' },
      { event: 'command', data: 'say two' },
    ]);
    expect(input.value).toBe('');
    expect(JSON.parse(localStorage.getItem('catalyst.console.history.default/web')!)).toEqual(['say one', 'say two']);
    fireEvent.change(input, { target: { value: 'dra' } });
    fireEvent.keyDown(input, { key: 'ArrowUp' });
    expect(input.value).toBe('say two');
    fireEvent.keyDown(input, { key: 'ArrowUp' });
    expect(input.value).toBe('say one');
    fireEvent.keyDown(input, { key: 'ArrowDown' });
    fireEvent.keyDown(input, { key: 'ArrowDown' });
    expect(input.value).toBe('dra');

    act(() => ws.frame('error', 'you may not send commands to this server'));
    expect(screen.getByRole('alert').textContent).toBe('you may not send commands to this server');
  });

  it('reconnects with a fresh ticket after the server closes', async () => {
    show();
    const ws = await socket(1);
    vi.useFakeTimers({ toFake: ['setTimeout', 'setInterval', 'clearTimeout', 'clearInterval'] });
    act(() => {
      ws.open();
      ws.frame('closed', 'the console ended');
      ws.onclose?.({ reason: 'the console ended' });
    });
    expect(screen.getByTestId('console-status').textContent).toBe('reconnecting in 1 s');
    expect(screen.getByText('Closed: the console ended')).toBeTruthy();
    await act(async () => {
      await vi.advanceTimersByTimeAsync(1000);
    });
    vi.useRealTimers();
    const again = await socket(2);
    expect(again.url).toContain('ticket=ticket_2');
  });
});

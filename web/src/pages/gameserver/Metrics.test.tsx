// The metrics tab against a fake API (uPlot replaced: jsdom has no canvas): current values as
// text after two polls, the not-running notice, the API's error shown.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { act, cleanup, render, screen } from '@testing-library/react';

const plots: { data: unknown[] }[] = [];
vi.mock('uplot', () => ({
  default: class {
    width = 400;
    data: unknown;
    constructor(_o: unknown, data: unknown) {
      this.data = data;
      plots.push(this as never);
    }
    setData(d: unknown) {
      this.data = d;
    }
    setSize() {}
    destroy() {}
  },
}));

import Metrics from './Metrics';

let reply: () => Response;

beforeEach(() => {
  plots.length = 0;
  vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'Date'] });
  vi.setSystemTime(Date.parse('2026-01-01T00:00:00Z'));
  vi.stubGlobal('ResizeObserver', class { observe() {} disconnect() {} });
  let n = 0;
  reply = () => {
    n += 1;
    return new Response(
      JSON.stringify({
        cpuUsageNs: n * 2.5e9,
        memoryBytes: 64 * 1024 * 1024,
        memoryLimitBytes: 256 * 1024 * 1024,
        networkRxBytes: n * 5120,
        networkTxBytes: 0,
        diskUsedBytes: 1024,
        diskLimitBytes: 0,
        pids: 3,
      }),
      { status: 200 },
    );
  };
  vi.stubGlobal('fetch', vi.fn(() => Promise.resolve(reply())));
});

afterEach(() => {
  cleanup();
  vi.useRealTimers();
  vi.unstubAllGlobals();
});

const gs = (phase: string) => ({ kind: 'GameServer', metadata: { name: 'web', namespace: 'default' }, status: { phase } });

describe('Metrics', () => {
  it('polls every 5 s and says the current values', async () => {
    render(<Metrics gs={gs('Running')} />);
    await act(async () => {
      await vi.advanceTimersByTimeAsync(5000);
    });
    const now = await screen.findByTestId('metrics-now');
    expect(now.textContent).toContain('0.50 cores (50%)');
    expect(now.textContent).toContain('64.0 MiB of 256 MiB');
    expect(now.textContent).toContain('received 1.0 KiB/s');
    expect(screen.queryByTestId('metrics-not-running')).toBeNull();
    expect(plots).toHaveLength(3);
    expect((plots[0].data as number[][])[1]).toEqual([null, 0.5]);
  });

  it('says when the server is not running and shows the API error', async () => {
    reply = () => new Response(JSON.stringify({ kind: 'Status', code: 503, message: 'gameserver default/web is not on a node' }), { status: 503 });
    render(<Metrics gs={gs('Stopped')} />);
    expect(screen.getByTestId('metrics-not-running').textContent).toContain('not running (phase Stopped)');
    expect(await screen.findByText('Metrics: gameserver default/web is not on a node')).toBeTruthy();
  });
});

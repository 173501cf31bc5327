// The Metrics tab: the server's resource use, polled every 5 s (the API answers only "now", so
// the last ten minutes are kept here), drawn with uPlot and also given as text.

import { useEffect, useMemo, useRef, useState } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

import { api, resourcePath } from '../../api/client';
import type { GameServer } from '../../api/types';
import { formatBytes } from '../../lib/prometheus';
import {
  addSample,
  formatCores,
  formatRate,
  latest,
  toSeries,
  toSnapshot,
  type Sample,
} from '../../lib/metricsSeries';
import { cssVar, useDark } from './useDark';

const POLL_MS = 5000;
const HEIGHT = 200;

interface Line {
  label: string;
  values: (number | null)[];
  /** a CSS variable for the colour */
  color: string;
  dash?: number[];
}

function Chart({
  title,
  description,
  t,
  lines,
  format,
  dark,
}: {
  title: string;
  description: string;
  t: number[];
  lines: Line[];
  format: (v: number) => string;
  dark: boolean;
}) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const data = useMemo(() => [t, ...lines.map((l) => l.values)] as uPlot.AlignedData, [t, lines]);
  const latestData = useRef(data);
  latestData.current = data;
  const shape = lines.map((l) => `${l.label}:${l.color}`).join('|');

  // made again when the theme (its colours) or the set of lines changes
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const text = cssVar('--text', dark ? '#e8eaf0' : '#1b1f27');
    const grid = cssVar('--border', dark ? '#363c4a' : '#d5d9e0');
    const axis: uPlot.Axis = {
      stroke: text,
      grid: { stroke: grid, width: 1 },
      ticks: { stroke: grid, width: 1 },
    };
    const opts: uPlot.Options = {
      width: Math.max(200, el.clientWidth),
      height: HEIGHT,
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true }, y: { range: (_u, min, max) => [0, Math.max(max, min, 0) * 1.1 || 1] } },
      axes: [
        { ...axis },
        { ...axis, size: 80, values: (_u, splits) => splits.map((v) => (v == null ? '' : format(v))) },
      ],
      series: [
        {},
        ...lines.map((l) => ({
          label: l.label,
          stroke: cssVar(l.color, '#888'),
          width: 2,
          dash: l.dash,
          value: (_u: uPlot, v: number | null) => (v == null ? '—' : format(v)),
        })),
      ],
    };
    const p = new uPlot(opts, latestData.current, el);
    plot.current = p;
    const ro = new ResizeObserver(() => {
      const w = el.clientWidth;
      if (w > 0 && Math.abs(w - p.width) > 1) p.setSize({ width: w, height: HEIGHT });
    });
    ro.observe(el);
    return () => {
      ro.disconnect();
      plot.current = null;
      p.destroy();
    };
    // `format` and `lines` values are read when made; the data goes in below
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [dark, shape]);

  useEffect(() => {
    plot.current?.setData(data);
  }, [data]);

  return (
    <figure className="metrics-chart card" style={{ margin: 0 }}>
      <h3>{title}</h3>
      <div ref={box} className="metrics-plot" role="img" aria-label={description} />
    </figure>
  );
}

export default function Metrics({ gs }: { gs: GameServer }) {
  const ns = gs.metadata.namespace ?? '';
  const name = gs.metadata.name;
  const phase = gs.status?.phase ?? 'Pending';
  const dark = useDark();
  const [samples, setSamples] = useState<Sample[]>([]);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    const abort = new AbortController();
    const poll = async () => {
      try {
        const answer = await api<unknown>(resourcePath('gameservers', ns, name, 'metrics'), { signal: abort.signal });
        const snap = toSnapshot(answer);
        if (abort.signal.aborted) return;
        if (snap) setSamples((old) => addSample(old, { ...snap, at: Date.now() }));
        setError(snap ? null : 'the server sent no metrics');
      } catch (e) {
        if (abort.signal.aborted) return;
        setError(e instanceof Error ? e.message : String(e));
      }
    };
    void poll();
    const id = setInterval(() => void poll(), POLL_MS);
    return () => {
      abort.abort();
      clearInterval(id);
    };
  }, [ns, name]);

  const s = useMemo(() => toSeries(samples), [samples]);
  const last = samples[samples.length - 1];
  const cpuLines = useMemo<Line[]>(() => [{ label: 'CPU', values: s.cpuCores, color: '--accent' }], [s]);
  const memLines = useMemo<Line[]>(
    () => [
      { label: 'Used', values: s.memory, color: '--accent' },
      { label: 'Limit', values: s.memoryLimit, color: '--danger', dash: [6, 4] },
    ],
    [s],
  );
  const netLines = useMemo<Line[]>(
    () => [
      { label: 'Received', values: s.rx, color: '--info' },
      { label: 'Sent', values: s.tx, color: '--ok' },
    ],
    [s],
  );
  const running = phase === 'Running';

  return (
    <div>
      {!running && (
        <p className="notice" data-testid="metrics-not-running">
          The server is not running (phase {phase}): there is nothing to measure until it starts.
          {samples.length > 0 && ' The charts show what was measured before.'}
        </p>
      )}
      {error &&
        (running ? (
          <div className="alert" role="alert">
            Metrics: {error}
          </div>
        ) : (
          <p className="muted">Metrics: {error}</p>
        ))}
      <div className="card gs-section">
        <h2>Now</h2>
        {last ? (
          <dl className="facts" data-testid="metrics-now">
            <dt>CPU</dt>
            <dd>{formatCores(latest(s.cpuCores))}</dd>
            <dt>Memory</dt>
            <dd>
              {formatBytes(last.memoryBytes)}
              {last.memoryLimitBytes > 0 ? ` of ${formatBytes(last.memoryLimitBytes)}` : ' (no limit)'}
            </dd>
            <dt>Network</dt>
            <dd>
              received {formatRate(latest(s.rx))}, sent {formatRate(latest(s.tx))}
            </dd>
            <dt>Disk</dt>
            <dd>
              {formatBytes(last.diskUsedBytes)}
              {last.diskLimitBytes ? ` of ${formatBytes(last.diskLimitBytes)}` : ''}
            </dd>
            <dt>Processes</dt>
            <dd>{last.pids ?? '—'}</dd>
            <dt>Measured</dt>
            <dd>
              <time dateTime={new Date(last.at).toISOString()}>{new Date(last.at).toLocaleTimeString()}</time>
              <span className="muted"> (every 5 s; {samples.length} samples kept for 10 minutes)</span>
            </dd>
          </dl>
        ) : (
          <p className="muted">{error ? 'No measurement yet.' : 'Measuring…'}</p>
        )}
      </div>
      <div className="metrics-charts">
        <Chart
          title="CPU (cores)"
          description="CPU use in cores over the last 10 minutes"
          t={s.t}
          lines={cpuLines}
          format={(v) => v.toFixed(2)}
          dark={dark}
        />
        <Chart
          title="Memory"
          description="Memory in use and its limit over the last 10 minutes"
          t={s.t}
          lines={memLines}
          format={(v) => formatBytes(v)}
          dark={dark}
        />
        <Chart
          title="Network"
          description="Bytes received and sent per second over the last 10 minutes"
          t={s.t}
          lines={netLines}
          format={(v) => formatRate(v)}
          dark={dark}
        />
      </div>
    </div>
  );
}

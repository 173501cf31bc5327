// Metrics samples of one server kept client-side (the API answers only "now"): a window of the
// last ten minutes, and the series the charts draw — CPU in cores from the cumulative
// `cpuUsageNs` counter, memory against its limit, network receive/send rates. A counter that
// goes down (the server restarted) gives no rate for that step rather than a negative one.

/** The answer of `GET …/gameservers/NAME/metrics` (nodelet's ServerMetrics). */
export interface MetricsSnapshot {
  cpuUsageNs: number;
  memoryBytes: number;
  memoryLimitBytes: number;
  networkRxBytes: number;
  networkTxBytes: number;
  diskUsedBytes?: number;
  diskLimitBytes?: number;
  pids?: number;
}

export interface Sample extends MetricsSnapshot {
  /** when it was read, ms since the epoch */
  at: number;
}

export const WINDOW_MS = 10 * 60 * 1000;

function num(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) ? v : 0;
}

/** A metrics answer as a snapshot (missing or odd fields read as 0); null when it is not an object. */
export function toSnapshot(v: unknown): MetricsSnapshot | null {
  if (!v || typeof v !== 'object') return null;
  const o = v as Record<string, unknown>;
  return {
    cpuUsageNs: num(o.cpuUsageNs),
    memoryBytes: num(o.memoryBytes),
    memoryLimitBytes: num(o.memoryLimitBytes),
    networkRxBytes: num(o.networkRxBytes),
    networkTxBytes: num(o.networkTxBytes),
    diskUsedBytes: num(o.diskUsedBytes),
    diskLimitBytes: num(o.diskLimitBytes),
    pids: num(o.pids),
  };
}

/** The samples after adding `s`, without those older than `windowMs` before it (a new array). */
export function addSample(samples: readonly Sample[], s: Sample, windowMs = WINDOW_MS): Sample[] {
  const from = s.at - windowMs;
  const kept = samples.filter((x) => x.at >= from && x.at < s.at);
  kept.push(s);
  return kept;
}

/** The rate per second of a counter between two samples; null across a reset or no time. */
export function rate(before: number, after: number, ms: number): number | null {
  if (ms <= 0 || after < before) return null;
  return ((after - before) * 1000) / ms;
}

export interface Series {
  /** seconds since the epoch (uPlot's x axis) */
  t: number[];
  cpuCores: (number | null)[];
  memory: number[];
  /** null where there is no limit */
  memoryLimit: (number | null)[];
  rx: (number | null)[];
  tx: (number | null)[];
}

/** The charts' data: one point per sample; rates start at the second sample. */
export function toSeries(samples: readonly Sample[]): Series {
  const out: Series = { t: [], cpuCores: [], memory: [], memoryLimit: [], rx: [], tx: [] };
  samples.forEach((s, i) => {
    const p = i > 0 ? samples[i - 1] : undefined;
    const ms = p ? s.at - p.at : 0;
    out.t.push(s.at / 1000);
    const cpu = p ? rate(p.cpuUsageNs, s.cpuUsageNs, ms) : null;
    out.cpuCores.push(cpu === null ? null : cpu / 1e9);
    out.memory.push(s.memoryBytes);
    out.memoryLimit.push(s.memoryLimitBytes > 0 ? s.memoryLimitBytes : null);
    out.rx.push(p ? rate(p.networkRxBytes, s.networkRxBytes, ms) : null);
    out.tx.push(p ? rate(p.networkTxBytes, s.networkTxBytes, ms) : null);
  });
  return out;
}

/** The newest value of a series that has one. */
export function latest<T>(values: readonly (T | null)[]): T | null {
  for (let i = values.length - 1; i >= 0; i--) if (values[i] !== null) return values[i];
  return null;
}

/** Bytes per second for people: "1.5 KiB/s". */
export function formatRate(bytesPerSecond: number | null): string {
  if (bytesPerSecond === null) return '—';
  const units = ['B/s', 'KiB/s', 'MiB/s', 'GiB/s'];
  let v = bytesPerSecond;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${v >= 100 || i === 0 ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`;
}

/** CPU cores for people: "0.25 cores (25%)". */
export function formatCores(cores: number | null): string {
  if (cores === null) return '—';
  return `${cores.toFixed(cores >= 10 ? 1 : 2)} cores (${(cores * 100).toFixed(0)}%)`;
}

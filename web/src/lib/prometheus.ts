// Reads the game-server samples out of the API's /metrics text (Prometheus exposition format),
// for the dashboard's cpu and memory columns.

export interface ServerSample {
  cpuSeconds?: number;
  memoryBytes?: number;
  memoryLimitBytes?: number;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** `namespace/name` → its samples, from the text of /metrics. */
export function parseServerSamples(text: string): Map<string, ServerSample> {
  const out = new Map<string, ServerSample>();
  for (const line of text.split('\n')) {
    if (!line.startsWith('catalyst_gameserver_')) continue;
    const m = LINE.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of m[2].matchAll(LABEL)) labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
    if (!labels.name) continue;
    const key = `${labels.namespace ?? ''}/${labels.name}`;
    const value = Number(m[3]);
    if (!Number.isFinite(value)) continue;
    const s = out.get(key) ?? {};
    if (m[1] === 'catalyst_gameserver_cpu_seconds_total') s.cpuSeconds = value;
    else if (m[1] === 'catalyst_gameserver_memory_bytes') s.memoryBytes = value;
    else if (m[1] === 'catalyst_gameserver_memory_limit_bytes') s.memoryLimitBytes = value;
    else continue;
    out.set(key, s);
  }
  return out;
}

/** CPU use in cores between two readings of a counter taken `seconds` apart. */
export function cpuCores(before: number | undefined, after: number | undefined, seconds: number): number | undefined {
  if (before === undefined || after === undefined || seconds <= 0 || after < before) return undefined;
  return (after - before) / seconds;
}

export function formatBytes(n: number | undefined): string {
  if (n === undefined) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${v >= 100 || i === 0 ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`;
}

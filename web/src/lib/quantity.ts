// Kubernetes quantities as the API writes them ("500m", "4Gi", "1.5", 2) parsed into plain
// numbers (cores, bytes) and formatted back for people.

const SUFFIX: Record<string, number> = {
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  '': 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

const QUANTITY = /^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(n|u|m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?[0-9]+)?$/;

/** The value of a quantity in base units (cores, bytes); undefined when absent or malformed. */
export function parseQuantity(q: string | number | null | undefined): number | undefined {
  if (q === null || q === undefined) return undefined;
  if (typeof q === 'number') return Number.isFinite(q) ? q : undefined;
  const m = QUANTITY.exec(q.trim());
  if (!m) return undefined;
  const n = Number(m[1]);
  const s = m[2] ?? '';
  if (/^[eE]/.test(s)) return n * 10 ** Number(s.slice(1));
  return n * SUFFIX[s];
}

/** Cores for people: "2", "1.5", "250m". */
export function formatCores(n: number | undefined): string {
  if (n === undefined) return '—';
  if (n !== 0 && Math.abs(n) < 1) return `${Math.round(n * 1000)}m`;
  return `${Number(n.toFixed(2))}`;
}

/** Bytes in binary units: "512 MiB", "3.8 GiB". */
export function formatBinary(n: number | undefined): string {
  if (n === undefined) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  let v = Math.abs(n);
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  const s = v >= 100 || i === 0 ? v.toFixed(0) : Number(v.toFixed(1)).toString();
  return `${n < 0 ? '-' : ''}${s} ${units[i]}`;
}

/** `part` as a whole percentage of `whole` (undefined when either is unknown or whole is 0). */
export function percent(part: number | undefined, whole: number | undefined): number | undefined {
  if (part === undefined || whole === undefined || whole <= 0) return undefined;
  return Math.round((part / whole) * 100);
}

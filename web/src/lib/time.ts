// Times for people: "12 s ago", "in 3 d", and expiry choices ("30d") turned into RFC 3339.

/** `iso` relative to `now`: "just now", "45 s ago", "3 min ago", "in 2 h", "5 d ago". */
export function relativeTime(iso: string | null | undefined, now: number = Date.now()): string {
  if (!iso) return '—';
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return iso;
  const d = Math.round((t - now) / 1000);
  const a = Math.abs(d);
  if (a < 5) return 'just now';
  let text: string;
  if (a < 60) text = `${a} s`;
  else if (a < 3600) text = `${Math.floor(a / 60)} min`;
  else if (a < 86400) text = `${Math.floor(a / 3600)} h`;
  else text = `${Math.floor(a / 86400)} d`;
  return d < 0 ? `${text} ago` : `in ${text}`;
}

/** A duration like `30d`, `12h`, `90m`, `1w` in milliseconds; undefined when malformed. */
export function parseDuration(s: string): number | undefined {
  const m = /^\s*(\d+)\s*(s|m|h|d|w)\s*$/.exec(s);
  if (!m) return undefined;
  const unit = { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3, w: 7 * 86400e3 }[m[2] as 's' | 'm' | 'h' | 'd' | 'w'];
  return Number(m[1]) * unit;
}

/** The RFC 3339 time `duration` after `now`, or undefined for "never"/malformed. */
export function expiryFrom(duration: string, now: number = Date.now()): string | undefined {
  const ms = parseDuration(duration);
  return ms === undefined ? undefined : new Date(now + ms).toISOString();
}

/** Whether `iso` is in the past. */
export function isPast(iso: string | null | undefined, now: number = Date.now()): boolean {
  if (!iso) return false;
  const t = Date.parse(iso);
  return !Number.isNaN(t) && t <= now;
}

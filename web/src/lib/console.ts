// Pure parts of the console: its WebSocket address, the JSON frames of the console protocol
// (`{"event", "data"}`), the reconnect backoff, and the plain-text copy of the last lines
// (ANSI colours stripped) that screen readers and tests read.

export type ConsoleFrame =
  | { event: 'line'; data: string }
  | { event: 'phase'; data: string | null }
  | { event: 'stats'; data: Record<string, unknown> | null }
  | { event: 'error'; data: string }
  | { event: 'closed'; data: string };

/** A server frame, or null for anything that is not one. */
export function parseFrame(text: string): ConsoleFrame | null {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  if (!v || typeof v !== 'object') return null;
  const { event, data } = v as { event?: unknown; data?: unknown };
  switch (event) {
    case 'line':
    case 'error':
    case 'closed':
      return { event, data: typeof data === 'string' ? data : data == null ? '' : JSON.stringify(data) };
    case 'phase':
      return { event, data: typeof data === 'string' ? data : null };
    case 'stats':
      return { event, data: data && typeof data === 'object' ? (data as Record<string, unknown>) : null };
    default:
      return null;
  }
}

/** The frame that sends one console command. */
export function commandFrame(text: string): string {
  return JSON.stringify({ event: 'command', data: text });
}

/**
 * The console's WebSocket URL: `path` is the one the ticket answer names; the ticket goes in
 * the query (browsers cannot send headers on a WebSocket).
 */
export function consoleUrl(loc: { protocol: string; host: string }, path: string, ticket: string, tail = 200): string {
  const scheme = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${loc.host}${path}?ticket=${encodeURIComponent(ticket)}&tail=${tail}`;
}

export const FIRST_BACKOFF_MS = 1000;
export const MAX_BACKOFF_MS = 30_000;

/** The wait before the next reconnect: 1 s, doubling, at most 30 s. */
export function nextBackoff(previousMs: number | undefined): number {
  if (!previousMs || previousMs < FIRST_BACKOFF_MS) return FIRST_BACKOFF_MS;
  return Math.min(MAX_BACKOFF_MS, previousMs * 2);
}

// CSI sequences (colours, cursor moves), OSC sequences (titles, links) and lone escapes
// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]|\x9b[0-?]*[ -/]*[@-~]/g;

/** The text without ANSI escape sequences (and without stray carriage returns). */
export function stripAnsi(s: string): string {
  return s.replace(ANSI, '').replace(/\r/g, '');
}

/** The last `max` lines, plain, after adding `lines` (a new array). */
export function appendLines(buffer: readonly string[], lines: readonly string[], max = 500): string[] {
  const next = buffer.concat(lines.map(stripAnsi));
  return next.length > max ? next.slice(next.length - max) : next;
}

/** A console line as the terminal wants it: CRLF line ends, so each line starts at column 0. */
export function terminalLine(line: string): string {
  return `${line.replace(/\r?\n/g, '\r\n')}\r\n`;
}

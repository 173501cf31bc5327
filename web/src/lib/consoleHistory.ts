// Command history of a console, per server, kept in localStorage: at most `MAX_HISTORY`
// entries, oldest first, never the same command twice in a row. Walking it with the arrow keys
// is a small pure state machine (`historyUp` / `historyDown`) that keeps what was being typed.

export const MAX_HISTORY = 100;

/** The history after sending `command` (blank commands and repeats of the last are not kept). */
export function pushHistory(history: readonly string[], command: string, max = MAX_HISTORY): string[] {
  if (command.trim() === '') return [...history];
  const next = history[history.length - 1] === command ? [...history] : [...history, command];
  return next.length > max ? next.slice(next.length - max) : next;
}

export function historyKey(namespace: string, name: string): string {
  return `catalyst.console.history.${namespace}/${name}`;
}

/** The stored history; anything unreadable counts as none. */
export function loadHistory(storage: Pick<Storage, 'getItem'>, key: string, max = MAX_HISTORY): string[] {
  try {
    const raw = storage.getItem(key);
    const v: unknown = raw ? JSON.parse(raw) : [];
    if (!Array.isArray(v)) return [];
    const strings = v.filter((x): x is string => typeof x === 'string');
    return strings.slice(Math.max(0, strings.length - max));
  } catch {
    return [];
  }
}

export function saveHistory(storage: Pick<Storage, 'setItem'>, key: string, history: readonly string[]): void {
  try {
    storage.setItem(key, JSON.stringify(history));
  } catch {
    /* storage full or disabled: history lives for this page only */
  }
}

/** Where the arrow keys are: `pos === entries.length` is the line being typed (`draft`). */
export interface HistoryCursor {
  pos: number;
  draft: string;
}

export function freshCursor(history: readonly string[]): HistoryCursor {
  return { pos: history.length, draft: '' };
}

/** Arrow up: the previous entry (stays on the oldest); `current` is what the input holds now. */
export function historyUp(
  history: readonly string[],
  cursor: HistoryCursor,
  current: string,
): { cursor: HistoryCursor; value: string } {
  if (history.length === 0) return { cursor, value: current };
  const pos = Math.min(cursor.pos, history.length);
  const draft = pos === history.length ? current : cursor.draft;
  const up = Math.max(0, pos - 1);
  return { cursor: { pos: up, draft }, value: history[up] };
}

/** Arrow down: the next entry, and past the newest the line that was being typed. */
export function historyDown(
  history: readonly string[],
  cursor: HistoryCursor,
  current: string,
): { cursor: HistoryCursor; value: string } {
  if (cursor.pos >= history.length) return { cursor: { pos: history.length, draft: cursor.draft }, value: current };
  const down = cursor.pos + 1;
  if (down >= history.length) return { cursor: { pos: history.length, draft: cursor.draft }, value: cursor.draft };
  return { cursor: { pos: down, draft: cursor.draft }, value: history[down] };
}

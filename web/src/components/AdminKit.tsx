// Small pieces the cluster and access pages share: the API's error shown as it is, a delete
// button that asks once more, relative times that stay current, a namespace scope for kinds
// that may not be listed everywhere, and a runner for one request at a time.

import { useEffect, useState, useSyncExternalStore, type ReactNode } from 'react';

import { ApiError } from '../api/client';
import { useCan } from '../api/hooks';
import { relativeTime } from '../lib/time';

/** The message of an error: the API's own (ApiError.message) when it is one. */
export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** An error box (role=alert), nothing when there is no error. */
export function ErrorAlert({ error, id }: { error: unknown; id?: string }) {
  if (error === null || error === undefined || error === '') return null;
  return (
    <div className="alert" role="alert" id={id}>
      {typeof error === 'string' ? error : errorText(error)}
    </div>
  );
}

/** A notice (role=status) that something was done, nothing when there is no text. */
export function StatusNotice({ text }: { text?: string | null }) {
  if (!text) return null;
  return (
    <div className="notice" role="status">
      {text}
    </div>
  );
}

/** The API cause for `field` (a Status naming it), for showing beside its input. */
export function causeOf(e: unknown, field: string): string | undefined {
  return e instanceof ApiError ? e.causeFor(field) : undefined;
}

/** A field's error under its input (ids `${id}-error`, for aria-describedby). */
export function FieldError({ id, message }: { id: string; message?: string }) {
  if (!message) return null;
  return (
    <span className="error" id={`${id}-error`} role="alert">
      {message}
    </span>
  );
}

// one clock for every relative time on the page
let now = Date.now();
const ticks = new Set<() => void>();
let timer: ReturnType<typeof setInterval> | undefined;
function subscribe(f: () => void) {
  ticks.add(f);
  timer ??= setInterval(() => {
    now = Date.now();
    for (const t of ticks) t();
  }, 5000);
  return () => {
    ticks.delete(f);
    if (ticks.size === 0 && timer) {
      clearInterval(timer);
      timer = undefined;
    }
  };
}

/** "12 s ago", kept current; the exact time in a tooltip and <time>. */
export function Ago({ iso }: { iso?: string | null }) {
  const t = useSyncExternalStore(subscribe, () => now);
  if (!iso) return <span className="muted">—</span>;
  return (
    <time dateTime={iso} title={new Date(iso).toLocaleString()}>
      {relativeTime(iso, Math.max(t, Date.now() - 5000))}
    </time>
  );
}

/** A button that asks "sure?" in place before it acts (keyboard and screen readers alike). */
export function ConfirmButton({
  children,
  confirm,
  onConfirm,
  disabled,
}: {
  children: ReactNode;
  /** the text of the second button, e.g. "Delete alice" */
  confirm: string;
  onConfirm: () => void | Promise<void>;
  disabled?: boolean;
}) {
  const [asking, setAsking] = useState(false);
  const [busy, setBusy] = useState(false);
  if (!asking) {
    return (
      <button type="button" className="danger" disabled={disabled} onClick={() => setAsking(true)}>
        {children}
      </button>
    );
  }
  return (
    <span className="confirm" role="group" aria-label="Confirm">
      <button
        type="button"
        className="danger"
        autoFocus
        disabled={busy}
        onClick={async () => {
          setBusy(true);
          try {
            await onConfirm();
          } finally {
            setBusy(false);
            setAsking(false);
          }
        }}
      >
        {confirm}
      </button>
      <button type="button" onClick={() => setAsking(false)}>
        Cancel
      </button>
    </span>
  );
}

/** Runs one request at a time and keeps its error (the API's Status) for showing. */
export function useRunner() {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const run = async <T,>(f: () => Promise<T>): Promise<T | undefined> => {
    setBusy(true);
    setError(null);
    try {
      return await f();
    } catch (e) {
      setError(e);
      return undefined;
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, setError, run };
}

/**
 * Where to list a namespaced kind: every namespace when the API lets the user list it
 * cluster-wide, else the namespace typed in (kept in localStorage per kind).
 */
export function useNamespaceScope(plural: string) {
  const all = useCan('list', plural);
  const key = `catalyst.ns.${plural}`;
  const [ns, setNsState] = useState(() => {
    try {
      return localStorage.getItem(key) ?? 'default';
    } catch {
      return 'default';
    }
  });
  const setNs = (v: string) => {
    setNsState(v);
    try {
      localStorage.setItem(key, v);
    } catch {
      /* private mode */
    }
  };
  return { all, ns, setNs };
}

/** The namespace input of a page whose kind can't be listed everywhere (applies on blur/Enter). */
export function NamespaceField({ id, value, onChange, label = 'Namespace' }: { id: string; value: string; onChange: (v: string) => void; label?: string }) {
  const [draft, setDraft] = useState(value);
  useEffect(() => setDraft(value), [value]);
  return (
    <span className="inline-field">
      <label htmlFor={id}>{label}</label>
      <input
        id={id}
        value={draft}
        onChange={(e) => setDraft(e.target.value)}
        onBlur={() => onChange(draft.trim())}
        onKeyDown={(e) => {
          if (e.key === 'Enter') {
            e.preventDefault();
            onChange(draft.trim());
          }
        }}
      />
    </span>
  );
}

/** A column of a DataTable: its header text, or the text and a class (e.g. col-hide-phone). */
export type Column = string | { label: ReactNode; className?: string };

/** The header of an actions column, read by screen readers only. */
export const HIDDEN_ACTIONS: Column = { label: <span className="sr-only">Actions</span> };

/**
 * A scrolling table with an accessible name, a header row and, when `empty` is given, one
 * muted row spanning every column (e.g. "No user matches.") after the rows.
 */
export function DataTable({
  label,
  columns,
  empty,
  children,
}: {
  label: string;
  columns: Column[];
  empty?: ReactNode;
  children?: ReactNode;
}) {
  return (
    <div className="table-wrap">
      <table aria-label={label}>
        <thead>
          <tr>
            {columns.map((c, i) =>
              typeof c === 'string' ? (
                <th key={i} scope="col">
                  {c}
                </th>
              ) : (
                <th key={i} scope="col" className={c.className}>
                  {c.label}
                </th>
              ),
            )}
          </tr>
        </thead>
        <tbody>
          {children}
          {empty != null && empty !== false && (
            <tr>
              <td colSpan={columns.length} className="muted">
                {empty}
              </td>
            </tr>
          )}
        </tbody>
      </table>
    </div>
  );
}

/**
 * The toolbar atop a list page or tab: its heading (h1, or h2 in a tab), how many there are
 * (or "loading…", announced politely) and, after a spacer, the page's controls when given.
 */
export function ListToolbar({
  id,
  title,
  level = 1,
  loading,
  count,
  countTestId,
  children,
}: {
  /** the heading's id, for the section's aria-labelledby */
  id: string;
  title: string;
  level?: 1 | 2;
  loading: boolean;
  count: string;
  countTestId?: string;
  children?: ReactNode;
}) {
  const Heading = level === 1 ? 'h1' : 'h2';
  return (
    <div className="toolbar">
      <Heading id={id} style={{ margin: 0 }}>
        {title}
      </Heading>
      <span className="muted" aria-live="polite" data-testid={countTestId}>
        {loading ? 'loading…' : count}
      </span>
      {children !== undefined && (
        <>
          <span className="spacer" />
          {children}
        </>
      )}
    </div>
  );
}

/** A tab the user may not see: its heading and why (the API's access review said no). */
export function DeniedSection({ id, title, text }: { id: string; title: string; text: string }) {
  return (
    <section aria-labelledby={id}>
      <h2 id={id}>{title}</h2>
      <p className="notice">{text}</p>
    </section>
  );
}

// The API client: every request of the panel goes through `api()`. It adds the access token,
// refreshes it (single-use refresh tokens: one refresh at a time across every tab, through a
// Web Lock), and turns every error answer into an `ApiError` carrying the API's Status object.

export const GROUP = '/apis/catalyst.dev/v1alpha1';

/** The API's error body (`kind: Status`). */
export interface Status {
  kind?: 'Status';
  status?: string;
  reason?: string;
  code?: number;
  message?: string;
  details?: { name?: string; kind?: string; causes?: { field?: string; message?: string; reason?: string }[] };
}

export class ApiError extends Error {
  readonly code: number;
  readonly status: Status;
  constructor(code: number, status: Status) {
    super(status.message || `request failed with HTTP ${code}`);
    this.code = code;
    this.status = status;
  }
  /** The message of the cause naming `field` (exactly, or a field under it). */
  causeFor(field: string): string | undefined {
    return this.status.details?.causes?.find((c) => c.field === field || c.field?.startsWith(`${field}.`))
      ?.message;
  }
  get reason(): string | undefined {
    return this.status.reason;
  }
}

export interface Session {
  accessToken: string;
  expiresAt: string;
  refreshToken?: string;
  refreshExpiresAt?: string;
  /** the user name given at login */
  username: string;
}

const KEY = 'catalyst.session';
const listeners = new Set<(s: Session | null) => void>();

export function loadSession(): Session | null {
  try {
    const raw = localStorage.getItem(KEY);
    return raw ? (JSON.parse(raw) as Session) : null;
  } catch {
    return null;
  }
}

export function saveSession(s: Session | null): void {
  if (s) localStorage.setItem(KEY, JSON.stringify(s));
  else localStorage.removeItem(KEY);
  for (const l of listeners) l(s);
}

/** Calls `f` whenever the session changes (login, refresh, logout; also from other tabs). */
export function onSession(f: (s: Session | null) => void): () => void {
  listeners.add(f);
  return () => listeners.delete(f);
}

if (typeof window !== 'undefined') {
  window.addEventListener('storage', (e) => {
    if (e.key === KEY) for (const l of listeners) l(loadSession());
  });
}

async function readStatus(r: Response): Promise<Status> {
  const text = await r.text().catch(() => '');
  try {
    const v = JSON.parse(text);
    if (v && typeof v === 'object') return v as Status;
  } catch {
    /* not JSON */
  }
  return { kind: 'Status', code: r.status, message: text.trim() || r.statusText || `HTTP ${r.status}` };
}

interface TokenAnswer {
  accessToken: string;
  expiresAt: string;
  refreshToken?: string;
  refreshExpiresAt?: string;
}

/** Signs in; throws an ApiError (401 with the API's message, 429 when throttled). */
export async function login(username: string, password: string, totp?: string): Promise<Session> {
  const body: Record<string, string> = { username, password };
  if (totp) body.totp = totp;
  const r = await fetch('/auth/v1/login', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (!r.ok) throw new ApiError(r.status, await readStatus(r));
  const t = (await r.json()) as TokenAnswer;
  const s: Session = { ...t, username };
  saveSession(s);
  return s;
}

export async function logout(): Promise<void> {
  const s = loadSession();
  saveSession(null);
  if (s?.refreshToken) {
    await fetch('/auth/v1/logout', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ refreshToken: s.refreshToken }),
    }).catch(() => undefined);
  }
}

let refreshing: Promise<Session | null> | null = null;

/** A fresh access token; one refresh at a time in this tab, and across tabs via a Web Lock. */
function refresh(stale: Session): Promise<Session | null> {
  if (!refreshing) {
    const run = async (): Promise<Session | null> => {
      // another tab may have refreshed while we waited for the lock
      const now = loadSession();
      if (!now) return null;
      if (now.accessToken !== stale.accessToken) return now;
      if (!now.refreshToken) return null;
      const r = await fetch('/auth/v1/refresh', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ refreshToken: now.refreshToken }),
      });
      if (!r.ok) {
        if (r.status === 401) saveSession(null);
        return null;
      }
      const t = (await r.json()) as TokenAnswer;
      const next: Session = { ...now, ...t };
      saveSession(next);
      return next;
    };
    const locks = typeof navigator !== 'undefined' ? navigator.locks : undefined;
    refreshing = (locks ? (locks.request('catalyst.refresh', run) as unknown as Promise<Session | null>) : run()).finally(() => {
      refreshing = null;
    });
  }
  return refreshing as Promise<Session | null>;
}

/** The session with an access token valid for at least 30 more seconds, or null. */
export async function currentSession(): Promise<Session | null> {
  const s = loadSession();
  if (!s) return null;
  if (Date.parse(s.expiresAt) - Date.now() > 30_000) return s;
  return refresh(s);
}

export interface RequestOptions {
  method?: string;
  body?: unknown;
  /** Content-Type of `body`; JSON when the body is not a string, Blob or ArrayBuffer */
  contentType?: string;
  query?: Record<string, string | number | boolean | undefined>;
  signal?: AbortSignal;
  headers?: Record<string, string>;
}

export function withQuery(path: string, query?: RequestOptions['query']): string {
  if (!query) return path;
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `${path}${path.includes('?') ? '&' : '?'}${s}` : path;
}

/** Sends a request with the session's token; the raw Response of a 2xx answer. */
/** The field manager of every write the panel makes to the resource API. */
export const FIELD_MANAGER = 'panel';

export async function send(path: string, opts: RequestOptions = {}): Promise<Response> {
  const method = opts.method ?? 'GET';
  let query = opts.query;
  // writes of objects are recorded for the panel (not for the browser's User-Agent); a
  // password is no object's field
  if (
    method !== 'GET' &&
    path.startsWith(`${GROUP}/`) &&
    !path.endsWith('/password') &&
    !path.includes('fieldManager=') &&
    !query?.fieldManager
  ) {
    query = { ...(query ?? {}), fieldManager: FIELD_MANAGER };
  }
  const url = withQuery(path, query);
  const go = async (s: Session | null) => {
    const headers: Record<string, string> = { ...(opts.headers ?? {}) };
    if (s) headers.Authorization = `Bearer ${s.accessToken}`;
    let body: BodyInit | undefined;
    if (opts.body !== undefined) {
      if (typeof opts.body === 'string' || opts.body instanceof Blob || opts.body instanceof ArrayBuffer) {
        body = opts.body as BodyInit;
        if (opts.contentType) headers['Content-Type'] = opts.contentType;
      } else {
        body = JSON.stringify(opts.body);
        headers['Content-Type'] = opts.contentType ?? 'application/json';
      }
    }
    return fetch(url, { method, headers, body, signal: opts.signal });
  };
  const s = await currentSession();
  let r = await go(s);
  if (r.status === 401 && s) {
    const again = await refresh(s);
    if (again) r = await go(again);
    else saveSession(null);
  }
  if (!r.ok) throw new ApiError(r.status, await readStatus(r));
  return r;
}

/** A request whose answer is JSON (or nothing: 204 gives `undefined`). */
export async function api<T = unknown>(path: string, opts: RequestOptions = {}): Promise<T> {
  const r = await send(path, opts);
  if (r.status === 204) return undefined as T;
  const text = await r.text();
  return (text ? JSON.parse(text) : undefined) as T;
}

/** The path of a kind's collection or object: cluster kinds have no namespace. */
export function resourcePath(plural: string, namespace?: string, name?: string, sub?: string): string {
  let p = namespace ? `${GROUP}/namespaces/${encodeURIComponent(namespace)}/${plural}` : `${GROUP}/${plural}`;
  if (name) p += `/${encodeURIComponent(name)}`;
  if (sub) p += `/${sub}`;
  return p;
}

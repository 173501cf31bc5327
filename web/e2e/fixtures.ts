// What the browser tests share: the server global-setup.ts started (its URL, admin token and
// data directory, passed in CATALYST_E2E), API calls trusting its CA, catalystctl, signing in
// through the login form, and screenshots for docs/screenshots/.

import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, type Page } from '@playwright/test';

export interface E2eState {
  url: string;
  token: string;
  dir: string;
  ctl: string;
  config: string;
  /** the namespace and Template the tests use */
  template: string;
  password: string;
}

export const GROUP = '/apis/catalyst.dev/v1alpha1';

export function state(): E2eState {
  const raw = process.env.CATALYST_E2E;
  if (!raw) throw new Error('CATALYST_E2E is not set: run the tests with `npx playwright test` (global-setup.ts)');
  return JSON.parse(raw) as E2eState;
}

export interface Answer {
  status: number;
  body: unknown;
  text: string;
}

/** One API call with the admin token (or `token`), trusting only the cluster's CA. */
export function api(method: string, path: string, body?: unknown, opts: { token?: string; contentType?: string; url?: string; ca?: Buffer } = {}): Promise<Answer> {
  const s = opts.url ? null : state();
  const base = new URL(path, opts.url ?? s!.url);
  const ca = opts.ca ?? readFileSync(join(s!.dir, 'ca.crt'));
  const token = opts.token ?? s?.token;
  const data = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      base,
      {
        method,
        ca,
        headers: {
          ...(token ? { Authorization: `Bearer ${token}` } : {}),
          ...(data !== undefined ? { 'Content-Type': opts.contentType ?? 'application/json' } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = text;
          try {
            parsed = text ? JSON.parse(text) : undefined;
          } catch {
            /* text */
          }
          resolve({ status: res.statusCode ?? 0, body: parsed, text });
        });
      },
    );
    req.on('error', reject);
    req.setTimeout(30_000, () => req.destroy(new Error(`${method} ${path}: timed out`)));
    if (data !== undefined) req.write(data);
    req.end();
  });
}

/** `catalystctl ARGS` as the administrator; its stdout (throws with stderr on failure). */
export function ctl(args: string[], input?: string): string {
  const s = state();
  return execFileSync(s.ctl, args, {
    input,
    env: { ...process.env, CATALYST_CONFIG: s.config },
    encoding: 'utf8',
    stdio: ['pipe', 'pipe', 'pipe'],
  });
}

/** Signs in through the login form and waits for the dashboard. */
export async function signIn(page: Page, username: string, password = state().password): Promise<void> {
  await page.goto('/');
  await page.getByLabel('User name').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('heading', { name: 'Game servers' })).toBeVisible();
}

const here = dirname(fileURLToPath(import.meta.url));
export const SCREENSHOTS = join(here, '..', '..', 'docs', 'screenshots');

/**
 * Saves `docs/screenshots/NAME-desktop.png` and `NAME-phone.png` (1280×800 and 390×844), in the
 * theme the page shows, then restores the desktop size.
 */
export async function shoot(page: Page, name: string): Promise<void> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  const size = page.viewportSize() ?? { width: 1280, height: 800 };
  for (const [label, viewport] of [
    ['desktop', { width: 1280, height: 800 }],
    ['phone', { width: 390, height: 844 }],
  ] as const) {
    await page.setViewportSize(viewport);
    // let layout and charts follow the new size
    await page.waitForTimeout(300);
    await page.screenshot({ path: join(SCREENSHOTS, `${name}-${label}.png`), fullPage: false });
  }
  await page.setViewportSize(size);
}

/** Waits until `check` holds (polling every 500 ms), or fails naming `what`. */
export async function eventually<T>(what: string, check: () => Promise<T | undefined | false>, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const v = await check();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}

export interface GameServerObject {
  metadata: { name: string; namespace: string; uid: string; resourceVersion: string };
  spec: Record<string, unknown> & { variables?: Record<string, string> };
  status?: { phase?: string; ports?: { hostPort?: number; containerPort?: number }[]; address?: string };
}

export async function getServer(name: string, ns = 'default'): Promise<GameServerObject | undefined> {
  const r = await api('GET', `${GROUP}/namespaces/${ns}/gameservers/${name}`);
  return r.status === 200 ? (r.body as GameServerObject) : undefined;
}

/** The host port players reach the server's first port at. */
export function hostPort(gs: GameServerObject): number | undefined {
  return gs.status?.ports?.find((p) => p.hostPort)?.hostPort;
}

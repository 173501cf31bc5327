// Dark and light: the OS's choice unless the user picked one (kept in localStorage).
export type Theme = 'light' | 'dark' | 'system';
const KEY = 'catalyst.theme';

export function storedTheme(): Theme {
  const t = localStorage.getItem(KEY);
  return t === 'light' || t === 'dark' ? t : 'system';
}

export function applyTheme(t: Theme): void {
  if (t === 'system') {
    delete document.documentElement.dataset.theme;
    localStorage.removeItem(KEY);
  } else {
    document.documentElement.dataset.theme = t;
    localStorage.setItem(KEY, t);
  }
}

export function applyStoredTheme(): void {
  applyTheme(storedTheme());
}

/** Whether the page is dark now (for widgets that take a theme: Monaco, xterm, charts). */
export function isDark(): boolean {
  const t = document.documentElement.dataset.theme;
  if (t) return t === 'dark';
  return window.matchMedia?.('(prefers-color-scheme: dark)').matches ?? false;
}

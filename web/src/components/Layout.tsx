import { useState, type ReactNode } from 'react';
import { Link, useLocation } from 'wouter';

import { logout } from '../api/client';
import { useCan, useWhoAmI } from '../api/hooks';
import { applyTheme, storedTheme, type Theme } from './theme';

interface NavItem {
  href: string;
  label: string;
  /** the list permission that shows the item */
  resource?: string;
}

const NAV: NavItem[] = [
  { href: '/', label: 'Game servers' },
  { href: '/nodes', label: 'Nodes', resource: 'nodes' },
  { href: '/templates', label: 'Templates', resource: 'templates' },
  { href: '/alertrules', label: 'Alert rules', resource: 'alertrules' },
  { href: '/users', label: 'Users', resource: 'users' },
  { href: '/roles', label: 'Roles', resource: 'roles' },
  { href: '/apikeys', label: 'API keys' },
  { href: '/account', label: 'My account' },
];

/** A nav entry, shown only when the API says the user may list what it shows. */
function NavLink({ item, onNavigate }: { item: NavItem; onNavigate: () => void }) {
  const [location] = useLocation();
  const can = useCan('list', item.resource ?? '');
  if (item.resource && can !== true) return null;
  const current = item.href === '/' ? location === '/' || location.startsWith('/gameservers') : location.startsWith(item.href);
  return (
    <Link href={item.href} aria-current={current ? 'page' : undefined} onClick={onNavigate}>
      {item.label}
    </Link>
  );
}

export function Layout({ children }: { children: ReactNode }) {
  const who = useWhoAmI();
  const [open, setOpen] = useState(false);
  const [theme, setTheme] = useState<Theme>(storedTheme);
  const nextTheme: Theme = theme === 'system' ? 'dark' : theme === 'dark' ? 'light' : 'system';
  return (
    <div className="shell">
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <aside className={`sidebar${open ? ' open' : ''}`}>
        <div className="sidebar-top">
          <Link href="/" className="brand">
            <img src="/favicon.svg" alt="" width="24" height="24" /> Catalyst
          </Link>
          <button
            className="menu-button"
            aria-expanded={open}
            aria-controls="nav"
            onClick={() => setOpen(!open)}
          >
            Menu
          </button>
        </div>
        <nav className="nav" id="nav" aria-label="Main">
          {NAV.map((item) => (
            <NavLink key={item.href} item={item} onNavigate={() => setOpen(false)} />
          ))}
        </nav>
        <div className="sidebar-foot">
          <span>
            Signed in as <strong data-testid="whoami">{who.data?.user ?? who.data?.name ?? '…'}</strong>
          </span>
          <button
            onClick={() => {
              applyTheme(nextTheme);
              setTheme(nextTheme);
            }}
            aria-label={`Theme: ${theme}. Switch to ${nextTheme}`}
          >
            Theme: {theme}
          </button>
          <button onClick={() => void logout()}>Sign out</button>
        </div>
      </aside>
      <main id="main" tabIndex={-1}>
        {children}
      </main>
    </div>
  );
}

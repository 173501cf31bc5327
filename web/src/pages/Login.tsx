import { useState, type FormEvent } from 'react';

import { api, ApiError, login, saveSession } from '../api/client';

/** The API's answer to a password sign-in of a user with TOTP on and no code. */
export function needsTotp(e: unknown): boolean {
  return e instanceof ApiError && e.code === 401 && /TOTP code/i.test(e.message);
}

export function Login() {
  const [mode, setMode] = useState<'password' | 'token'>('password');
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [totp, setTotp] = useState('');
  const [askTotp, setAskTotp] = useState(false);
  const [token, setToken] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);

  const submit = async (ev: FormEvent) => {
    ev.preventDefault();
    setBusy(true);
    setError('');
    try {
      if (mode === 'password') {
        await login(username, password, askTotp ? totp : undefined);
      } else {
        const t = token.trim();
        // a token has no expiry the panel knows of: it is used until the API refuses it
        saveSession({ accessToken: t, expiresAt: '9999-12-31T00:00:00Z', username: '' });
        try {
          await api('/auth/v1/whoami');
        } catch (e) {
          saveSession(null);
          throw e;
        }
      }
    } catch (e) {
      if (needsTotp(e) && !askTotp) {
        setAskTotp(true);
        setError('This account signs in with a code from its authenticator app: enter it below.');
      } else if (e instanceof ApiError && e.code === 429) {
        setError(`${e.message} Try again later.`);
      } else if (e instanceof ApiError && e.code === 401 && mode === 'token') {
        setError('The API does not accept this token.');
      } else {
        setError(e instanceof Error ? e.message : String(e));
      }
    } finally {
      setBusy(false);
    }
  };

  return (
    <main className="login">
      <form className="card" onSubmit={submit} aria-describedby={error ? 'login-error' : undefined}>
        <h1>
          <img src="/favicon.svg" alt="" width="28" height="28" /> Sign in to Catalyst
        </h1>
        {error && (
          <div className="alert" role="alert" id="login-error">
            {error}
          </div>
        )}
        {mode === 'password' ? (
          <>
            <div className="field">
              <label htmlFor="username">User name</label>
              <input
                id="username"
                autoComplete="username"
                required
                value={username}
                onChange={(e) => setUsername(e.target.value)}
              />
            </div>
            <div className="field">
              <label htmlFor="password">Password</label>
              <input
                id="password"
                type="password"
                autoComplete="current-password"
                required
                value={password}
                onChange={(e) => setPassword(e.target.value)}
              />
            </div>
            {askTotp && (
              <div className="field">
                <label htmlFor="totp">Authenticator code</label>
                <input
                  id="totp"
                  inputMode="numeric"
                  autoComplete="one-time-code"
                  pattern="[0-9]{6}"
                  required
                  autoFocus
                  value={totp}
                  onChange={(e) => setTotp(e.target.value)}
                />
              </div>
            )}
          </>
        ) : (
          <div className="field">
            <label htmlFor="token">Access token</label>
            <span className="hint" id="token-hint">
              The administrator's token (<code>token:</code> in the data directory's admin.yaml) or an API key (
              <code>ck_…</code>).
            </span>
            <input
              id="token"
              type="password"
              required
              aria-describedby="token-hint"
              value={token}
              onChange={(e) => setToken(e.target.value)}
            />
          </div>
        )}
        <div className="toolbar">
          <button className="primary" type="submit" disabled={busy}>
            {busy ? 'Signing in…' : 'Sign in'}
          </button>
          <span className="spacer" />
          <button
            type="button"
            onClick={() => {
              setMode(mode === 'password' ? 'token' : 'password');
              setError('');
            }}
          >
            {mode === 'password' ? 'Use a token' : 'Use a password'}
          </button>
        </div>
      </form>
    </main>
  );
}

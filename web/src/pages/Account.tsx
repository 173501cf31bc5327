import { useState, type FormEvent } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';

import { api, ApiError, logout, resourcePath } from '../api/client';
import { useWhoAmI } from '../api/hooks';
import { Ago, causeOf, ErrorAlert, FieldError, useRunner } from '../components/AdminKit';
import { groupsOf4 } from '../lib/nodes';
import type { User } from './Users';
import { MIN_PASSWORD } from './Users';
import '../components/AdminKit.css';

function PasswordCard({ user }: { user: string }) {
  const [current, setCurrent] = useState('');
  const [next, setNext] = useState('');
  const [again, setAgain] = useState('');
  const [mismatch, setMismatch] = useState('');
  const [done, setDone] = useState(false);
  const runner = useRunner();
  const submit = async (ev: FormEvent) => {
    ev.preventDefault();
    setDone(false);
    if (next !== again) {
      setMismatch('The two new passwords differ.');
      return;
    }
    setMismatch('');
    const ok = await runner.run(async () => {
      await api('/auth/v1/password', { method: 'POST', body: { currentPassword: current, password: next } });
      return true;
    });
    if (ok) {
      setCurrent('');
      setNext('');
      setAgain('');
      setDone(true);
    }
  };
  const err = runner.error;
  const newErr = causeOf(err, 'password');
  // 403 "the current password is wrong" belongs to the current password's field
  const currentErr = err instanceof ApiError && err.code === 403 ? err.message : undefined;
  return (
    <form className="card" onSubmit={submit} aria-labelledby="pw-title">
      <h2 id="pw-title" style={{ marginTop: 0 }}>
        Password
      </h2>
      {!newErr && !currentErr && <ErrorAlert error={err} />}
      {done && (
        <div className="notice" role="status">
          Password changed. Your other sessions have ended, and this one ends when its token expires (within 15 minutes).{' '}
          <button type="button" onClick={() => void logout()}>
            Sign in again now
          </button>
        </div>
      )}
      <input type="text" autoComplete="username" value={user} readOnly hidden />
      <div className="field">
        <label htmlFor="acc-current">Current password</label>
        <input
          id="acc-current"
          type="password"
          autoComplete="current-password"
          required
          value={current}
          onChange={(e) => setCurrent(e.target.value)}
          aria-invalid={currentErr ? true : undefined}
          aria-describedby={currentErr ? 'acc-current-error' : undefined}
        />
        <FieldError id="acc-current" message={currentErr} />
      </div>
      <div className="field">
        <label htmlFor="acc-new">New password</label>
        <input
          id="acc-new"
          type="password"
          autoComplete="new-password"
          required
          minLength={MIN_PASSWORD}
          value={next}
          onChange={(e) => setNext(e.target.value)}
          aria-invalid={newErr ? true : undefined}
          aria-describedby="acc-new-hint"
        />
        <span className="hint" id="acc-new-hint">
          at least {MIN_PASSWORD} characters
        </span>
        <FieldError id="acc-new" message={newErr} />
      </div>
      <div className="field">
        <label htmlFor="acc-again">New password again</label>
        <input
          id="acc-again"
          type="password"
          autoComplete="new-password"
          required
          value={again}
          onChange={(e) => setAgain(e.target.value)}
          aria-invalid={mismatch ? true : undefined}
        />
        <FieldError id="acc-again" message={mismatch} />
      </div>
      <button type="submit" className="primary" disabled={runner.busy}>
        Change password
      </button>
    </form>
  );
}

interface Enrolment {
  secret: string;
  otpauthUrl: string;
}

function TotpCard({ on, onChange }: { on: boolean | undefined; onChange: () => void }) {
  // the enrolment secret lives in this component only, never in a cache or storage
  const [enrolment, setEnrolment] = useState<Enrolment | null>(null);
  const [code, setCode] = useState('');
  const [offCode, setOffCode] = useState('');
  const [message, setMessage] = useState('');
  const runner = useRunner();
  const enrol = async () => {
    setMessage('');
    const e = await runner.run(() => api<Enrolment>('/auth/v1/totp', { method: 'POST' }));
    if (e) setEnrolment({ secret: e.secret, otpauthUrl: e.otpauthUrl });
  };
  const confirm = async (ev: FormEvent) => {
    ev.preventDefault();
    const ok = await runner.run(async () => {
      await api('/auth/v1/totp/confirm', { method: 'POST', body: { code: code.trim() } });
      return true;
    });
    if (ok) {
      setEnrolment(null);
      setCode('');
      setMessage('Two-factor sign-in is on: from now on you sign in with a code too.');
      onChange();
    }
  };
  const cancel = async () => {
    // a pending enrolment is dropped without a code
    const ok = await runner.run(async () => {
      await api('/auth/v1/totp', { method: 'DELETE', body: { code: '' } });
      return true;
    });
    if (ok) {
      setEnrolment(null);
      setCode('');
    }
  };
  const turnOff = async (ev: FormEvent) => {
    ev.preventDefault();
    const ok = await runner.run(async () => {
      await api('/auth/v1/totp', { method: 'DELETE', body: { code: offCode.trim() } });
      return true;
    });
    if (ok) {
      setOffCode('');
      setMessage('Two-factor sign-in is off.');
      onChange();
    }
  };
  const err = runner.error;
  const codeErr = err instanceof ApiError && err.code === 403 ? err.message : undefined;
  return (
    <section className="card" aria-labelledby="totp-title">
      <h2 id="totp-title" style={{ marginTop: 0 }}>
        Two-factor sign-in (TOTP)
      </h2>
      <p>
        State:{' '}
        <strong data-testid="totp-state">{on === undefined ? '…' : on ? 'on' : enrolment ? 'being set up' : 'off'}</strong>
      </p>
      {message && (
        <p className="notice" role="status">
          {message}
        </p>
      )}
      {!codeErr && <ErrorAlert error={err} />}
      {on === false && !enrolment && (
        <button type="button" className="primary" disabled={runner.busy} onClick={() => void enrol()}>
          Set up two-factor sign-in
        </button>
      )}
      {enrolment && (
        <form onSubmit={confirm} aria-label="Confirm two-factor sign-in">
          <p>
            Add this key to an authenticator app (type it in, or open the link on a device that has one), then enter the
            6-digit code it shows.
          </p>
          <p className="muted" id="totp-secret-label">
            Secret key
          </p>
          <p className="secret-box" aria-labelledby="totp-secret-label" data-testid="totp-secret">
            {groupsOf4(enrolment.secret)}
          </p>
          <p className="muted" id="totp-url-label">
            Setup link
          </p>
          <p className="secret-box" aria-labelledby="totp-url-label" style={{ fontSize: 12 }}>
            <a href={enrolment.otpauthUrl}>{enrolment.otpauthUrl}</a>
          </p>
          <div className="field">
            <label htmlFor="totp-code">Code from the app</label>
            <input
              id="totp-code"
              inputMode="numeric"
              autoComplete="one-time-code"
              pattern="[0-9]{6}"
              required
              value={code}
              onChange={(e) => setCode(e.target.value)}
              aria-invalid={codeErr ? true : undefined}
              aria-describedby={codeErr ? 'totp-code-error' : undefined}
            />
            <FieldError id="totp-code" message={codeErr} />
          </div>
          <div className="toolbar">
            <button type="submit" className="primary" disabled={runner.busy}>
              Turn on two-factor sign-in
            </button>
            <button type="button" disabled={runner.busy} onClick={() => void cancel()}>
              Cancel setup
            </button>
          </div>
        </form>
      )}
      {on && (
        <form onSubmit={turnOff} aria-label="Turn off two-factor sign-in">
          <div className="field">
            <label htmlFor="totp-off-code">Current code from the app</label>
            <input
              id="totp-off-code"
              inputMode="numeric"
              autoComplete="one-time-code"
              pattern="[0-9]{6}"
              required
              value={offCode}
              onChange={(e) => setOffCode(e.target.value)}
              aria-invalid={codeErr ? true : undefined}
              aria-describedby={codeErr ? 'totp-off-code-error' : undefined}
            />
            <FieldError id="totp-off-code" message={codeErr} />
          </div>
          <button type="submit" className="danger" disabled={runner.busy}>
            Turn off two-factor sign-in
          </button>
        </form>
      )}
    </section>
  );
}

export function Account() {
  const who = useWhoAmI();
  const qc = useQueryClient();
  const isUser = who.data?.kind === 'user';
  const me = who.data?.user ?? undefined;
  // everyone may read their own User (docs/auth.md); it says whether TOTP is on
  const user = useQuery({
    queryKey: ['account-user', me],
    enabled: isUser && !!me,
    queryFn: () => api<User>(resourcePath('users', undefined, me)),
    staleTime: 10_000,
  });
  return (
    <section aria-labelledby="acc-title" className="stack">
      <h1 id="acc-title" style={{ margin: 0 }}>
        My account
      </h1>
      <ErrorAlert error={who.error} />
      <div className="card">
        <dl className="facts">
          <dt>Signed in as</dt>
          <dd data-testid="account-name">{who.data?.name ?? '…'}</dd>
          <dt>Kind</dt>
          <dd>{who.data?.kind ?? '…'}</dd>
          {who.data?.user && who.data.user !== who.data.name && (
            <>
              <dt>Acting for</dt>
              <dd>{who.data.user}</dd>
            </>
          )}
          <dt>Groups</dt>
          <dd>{who.data?.groups?.length ? who.data.groups.join(', ') : '—'}</dd>
          {user.data && (
            <>
              <dt>Display name</dt>
              <dd>{user.data.spec?.displayName ?? '—'}</dd>
              <dt>Email</dt>
              <dd>{user.data.spec?.email ?? '—'}</dd>
              <dt>Last sign-in</dt>
              <dd>
                <Ago iso={user.data.status?.lastLoginTime} />
              </dd>
            </>
          )}
        </dl>
      </div>
      <ErrorAlert error={user.error} />
      {who.data && !isUser && (
        <p className="notice">
          This session uses a {who.data.kind} credential, which has no password or second factor of its own: sign in as a
          user to change them.
        </p>
      )}
      {isUser && me && (
        <div className="grid-2">
          <PasswordCard user={me} />
          <TotpCard
            on={user.data ? user.data.status?.totpEnabled === true : undefined}
            onChange={() => void qc.invalidateQueries({ queryKey: ['account-user', me] })}
          />
        </div>
      )}
    </section>
  );
}

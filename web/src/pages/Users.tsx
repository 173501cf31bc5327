import { useMemo, useState, type FormEvent } from 'react';
import { Link } from 'wouter';

import { api, resourcePath } from '../api/client';
import { useCan, useLiveList } from '../api/hooks';
import type { KObject } from '../api/types';
import { Ago, causeOf, ConfirmButton, ErrorAlert, FieldError, useRunner, DataTable, ListToolbar } from '../components/AdminKit';
import { splitList } from '../lib/rbac';
import '../components/AdminKit.css';

export interface User extends KObject {
  spec?: { displayName?: string | null; email?: string | null; disabled?: boolean; groups?: string[]; sshKeys?: string[] };
  status?: { lastLoginTime?: string | null; totpEnabled?: boolean };
}

/** The API's rule, checked here too so the form says it before the request. */
export const MIN_PASSWORD = 10;

function PasswordForm({ name, onDone }: { name: string; onDone: () => void }) {
  const [pw, setPw] = useState('');
  const runner = useRunner();
  const id = `pw-${name}`;
  const submit = async (ev: FormEvent) => {
    ev.preventDefault();
    const ok = await runner.run(async () => {
      await api(resourcePath('users', undefined, name, 'password'), { method: 'POST', body: { password: pw } });
      return true;
    });
    if (ok) onDone();
  };
  const fieldErr = causeOf(runner.error, 'password');
  return (
    <form onSubmit={submit} className="actions" aria-label={`Set the password of ${name}`}>
      <label htmlFor={id}>New password for {name}</label>
      <input
        id={id}
        type="password"
        autoComplete="new-password"
        minLength={MIN_PASSWORD}
        required
        value={pw}
        onChange={(e) => setPw(e.target.value)}
        aria-invalid={fieldErr ? true : undefined}
        aria-describedby={`${id}-hint`}
      />
      <span className="hint muted" id={`${id}-hint`}>
        at least {MIN_PASSWORD} characters; ends the user's sessions
      </span>
      <button type="submit" className="primary" disabled={runner.busy}>
        Save password
      </button>
      <button type="button" onClick={onDone}>
        Cancel
      </button>
      {!fieldErr && <ErrorAlert error={runner.error} />}
      <FieldError id={id} message={fieldErr} />
    </form>
  );
}

function UserRow({ user, can }: { user: User; can: { patch?: boolean; del?: boolean; password?: boolean } }) {
  const name = user.metadata.name;
  const [pwOpen, setPwOpen] = useState(false);
  const [saved, setSaved] = useState(false);
  const runner = useRunner();
  const disabled = user.spec?.disabled === true;
  const path = resourcePath('users', undefined, name);
  const setDisabled = (v: boolean) =>
    runner.run(() =>
      api(path, {
        method: 'PATCH',
        query: { fieldManager: 'panel' },
        contentType: 'application/merge-patch+json',
        body: JSON.stringify({ spec: { disabled: v } }),
      }),
    );
  return (
    <tr data-testid={`user-row-${name}`}>
      <td>
        <strong>{name}</strong>
      </td>
      <td>{user.spec?.displayName ?? '—'}</td>
      <td>{user.spec?.email ?? '—'}</td>
      <td style={{ whiteSpace: 'normal' }}>{(user.spec?.groups ?? []).join(', ') || '—'}</td>
      <td>{disabled ? <span className="badge danger">Disabled</span> : <span className="badge ok">Active</span>}</td>
      <td>{user.status?.totpEnabled ? 'on' : 'off'}</td>
      <td>
        <Ago iso={user.status?.lastLoginTime} />
      </td>
      <td className="actions-cell">
        {pwOpen ? (
          <PasswordForm
            name={name}
            onDone={() => {
              setPwOpen(false);
              setSaved(true);
            }}
          />
        ) : (
          <div className="actions">
            {can.password && (
              <button type="button" onClick={() => { setSaved(false); setPwOpen(true); }}>
                Set password of {name}
              </button>
            )}
            {can.patch && (
              <button type="button" disabled={runner.busy} onClick={() => void setDisabled(!disabled)}>
                {disabled ? `Enable ${name}` : `Disable ${name}`}
              </button>
            )}
            <Link href={`/yaml/users/${encodeURIComponent(name)}`}>Edit YAML</Link>
            {can.del && (
              <ConfirmButton confirm={`Delete ${name} now`} onConfirm={async () => void (await runner.run(() => api(path, { method: 'DELETE' })))}>
                Delete {name}
              </ConfirmButton>
            )}
          </div>
        )}
        {saved && !pwOpen && (
          <span role="status" className="muted">
            Password saved.
          </span>
        )}
        <ErrorAlert error={runner.error} />
      </td>
    </tr>
  );
}

function NewUserForm({ canPassword, onDone }: { canPassword: boolean; onDone: () => void }) {
  const [f, setF] = useState({ name: '', displayName: '', email: '', groups: '', password: '' });
  const runner = useRunner();
  const [step, setStep] = useState('');
  const set = (k: keyof typeof f, v: string) => setF((old) => ({ ...old, [k]: v }));
  const submit = async (ev: FormEvent) => {
    ev.preventDefault();
    const ok = await runner.run(async () => {
      const spec: NonNullable<User['spec']> = {};
      if (f.displayName.trim()) spec.displayName = f.displayName.trim();
      if (f.email.trim()) spec.email = f.email.trim();
      const groups = splitList(f.groups);
      if (groups.length) spec.groups = groups;
      setStep('user');
      await api(resourcePath('users'), {
        method: 'POST',
        query: { fieldManager: 'panel' },
        body: { apiVersion: 'catalyst.dev/v1alpha1', kind: 'User', metadata: { name: f.name.trim() }, spec },
      });
      if (f.password) {
        setStep('password');
        await api(resourcePath('users', undefined, f.name.trim(), 'password'), {
          method: 'POST',
          body: { password: f.password },
        });
      }
      return true;
    });
    if (ok) onDone();
  };
  const err = runner.error;
  const fieldErr = (k: string) => causeOf(err, k === 'password' ? 'password' : k === 'name' ? 'metadata.name' : `spec.${k}`);
  const field = (k: keyof typeof f, label: string, extra: Record<string, unknown> = {}, hint?: string) => (
    <div className="field">
      <label htmlFor={`nu-${k}`}>{label}</label>
      <input
        id={`nu-${k}`}
        value={f[k]}
        onChange={(e) => set(k, e.target.value)}
        aria-invalid={fieldErr(k) ? true : undefined}
        {...extra}
      />
      {hint && <span className="hint">{hint}</span>}
      <FieldError id={`nu-${k}`} message={fieldErr(k)} />
    </div>
  );
  return (
    <form className="card" onSubmit={submit} aria-labelledby="nu-title" style={{ marginBottom: 16 }}>
      <h2 id="nu-title" style={{ marginTop: 0 }}>
        New user
      </h2>
      {err != null && step === 'password' && (
        <p className="notice">The user was created, but the password was refused: set it from the list.</p>
      )}
      <ErrorAlert error={err} />
      <div className="form-grid">
        {field('name', 'User name', { required: true, autoComplete: 'off' })}
        {field('displayName', 'Display name')}
        {field('email', 'Email', { type: 'email' })}
        {field('groups', 'Groups', {}, 'separated by commas')}
        {canPassword &&
          field('password', 'Password', { type: 'password', autoComplete: 'new-password', minLength: MIN_PASSWORD }, `optional; at least ${MIN_PASSWORD} characters`)}
      </div>
      <div className="toolbar">
        <button type="submit" className="primary" disabled={runner.busy}>
          Create user
        </button>
        <button type="button" onClick={onDone}>
          Cancel
        </button>
      </div>
    </form>
  );
}

export function Users() {
  const canList = useCan('list', 'users');
  const canCreate = useCan('create', 'users');
  const canPassword = useCan('create', 'users/password');
  const canPatch = useCan('patch', 'users');
  const canDelete = useCan('delete', 'users');
  const list = useLiveList<User>('users', undefined, {}, canList === true);
  const [creating, setCreating] = useState(false);
  const [q, setQ] = useState('');
  const rows = useMemo(() => {
    const s = q.trim().toLowerCase();
    return list.items
      .filter(
        (u) =>
          !s ||
          u.metadata.name.toLowerCase().includes(s) ||
          (u.spec?.displayName ?? '').toLowerCase().includes(s) ||
          (u.spec?.email ?? '').toLowerCase().includes(s),
      )
      .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
  }, [list.items, q]);
  const can = { patch: canPatch === true, del: canDelete === true, password: canPassword === true };

  return (
    <section aria-labelledby="users-title">
      <ListToolbar
        id="users-title"
        title="Users"
        loading={list.isLoading}
        count={`${rows.length} of ${list.items.length}`}
      >
        <label className="sr-only" htmlFor="users-q">
          Find users
        </label>
        <input id="users-q" placeholder="Find users…" value={q} onChange={(e) => setQ(e.target.value)} />
        {canCreate && !creating && (
          <button type="button" className="primary" onClick={() => setCreating(true)}>
            New user
          </button>
        )}
      </ListToolbar>
      {canList === false && <p className="notice">You may not list users.</p>}
      {creating && <NewUserForm canPassword={canPassword === true} onDone={() => setCreating(false)} />}
      <ErrorAlert error={list.error} />
      {canList && (
        <DataTable
          label="Users"
          columns={['Name', 'Display name', 'Email', 'Groups', 'State', 'TOTP', 'Last login', 'Actions']}
          empty={!list.isLoading && rows.length === 0 ? 'No user matches.' : null}
        >
          {rows.map((u) => (
            <UserRow key={u.metadata.name} user={u} can={can} />
          ))}
        </DataTable>
      )}
    </section>
  );
}

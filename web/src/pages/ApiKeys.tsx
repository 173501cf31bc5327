import { useEffect, useMemo, useRef, useState, type FormEvent } from 'react';
import { Link } from 'wouter';

import { api, resourcePath } from '../api/client';
import { useCan, useLiveList, useWhoAmI } from '../api/hooks';
import type { KObject } from '../api/types';
import { Ago, causeOf, ConfirmButton, ErrorAlert, FieldError, useRunner, DataTable, ListToolbar } from '../components/AdminKit';
import { grantsFromRows, grantText, type GrantRow, type Role, type RoleGrant } from '../lib/rbac';
import { expiryFrom, isPast } from '../lib/time';
import '../components/AdminKit.css';

interface ApiKey extends KObject {
  spec?: { owner: string; description?: string | null; expiresAt?: string | null; roles?: RoleGrant[]; requestsPerMinute?: number | null };
  status?: { lastUsedTime?: string | null; tokenPrefix?: string | null; token?: string };
}

/**
 * The secret of a key just made, shown once. It lives only in this dialog's state: never in
 * react-query's cache (the create is a plain request, not a mutation) nor in storage.
 */
function SecretDialog({ name, token, onClose }: { name: string; token: string; onClose: () => void }) {
  const ref = useRef<HTMLDialogElement>(null);
  const [copied, setCopied] = useState('');
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (typeof d.showModal === 'function') {
      if (!d.open) d.showModal();
    } else d.setAttribute('open', '');
  }, []);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(token);
      setCopied('Copied to the clipboard.');
    } catch {
      setCopied('The browser refused the clipboard: select the key and copy it.');
    }
  };
  return (
    <dialog ref={ref} aria-labelledby="secret-title" aria-describedby="secret-warning" onClose={onClose} onCancel={onClose}>
      <h2 id="secret-title" style={{ marginTop: 0 }}>
        API key {name} created
      </h2>
      <p id="secret-warning" className="notice">
        Copy the key now: <strong>it will not be shown again</strong>. The server keeps only a hash of it.
      </p>
      <p className="secret-box" data-testid="apikey-secret" aria-label="The new API key">
        {token}
      </p>
      <div className="toolbar">
        <button type="button" className="primary" onClick={() => void copy()}>
          Copy the key
        </button>
        <button
          type="button"
          onClick={() => {
            const d = ref.current;
            // close() fires the dialog's close event (onClose); without dialog support, close here
            if (d && typeof d.close === 'function' && d.open) d.close();
            else onClose();
          }}
        >
          I have saved it: close
        </button>
        <span role="status" className="muted">
          {copied}
        </span>
      </div>
    </dialog>
  );
}

const EXPIRY = [
  { value: '30d', label: '30 days' },
  { value: '90d', label: '90 days' },
  { value: '365d', label: 'one year' },
  { value: 'never', label: 'never' },
  { value: 'date', label: 'on a date…' },
];

function NewKeyForm({
  me,
  roles,
  showOwner,
  onCreated,
  onCancel,
}: {
  me: string;
  roles: Role[];
  showOwner: boolean;
  onCreated: (name: string, token: string) => void;
  onCancel: () => void;
}) {
  const [name, setName] = useState('');
  const [owner, setOwner] = useState(me);
  const [description, setDescription] = useState('');
  const [expiry, setExpiry] = useState('90d');
  const [date, setDate] = useState('');
  const [rpm, setRpm] = useState('');
  const [rows, setRows] = useState<GrantRow[]>([{ role: '', namespace: '', resourceNames: '' }]);
  const runner = useRunner();
  const err = runner.error;
  const setRow = (i: number, k: keyof GrantRow, v: string) => setRows((old) => old.map((r, j) => (j === i ? { ...r, [k]: v } : r)));
  const submit = async (ev: FormEvent) => {
    ev.preventDefault();
    // the answer (with the secret) goes straight to the dialog's state and nowhere else
    await runner.run(async () => {
      const spec: NonNullable<ApiKey['spec']> = { owner: owner.trim() || me, roles: grantsFromRows(rows) };
      if (description.trim()) spec.description = description.trim();
      if (expiry === 'date' && date) spec.expiresAt = new Date(`${date}T23:59:59`).toISOString();
      else if (expiry !== 'never' && expiry !== 'date') spec.expiresAt = expiryFrom(expiry);
      if (rpm.trim()) spec.requestsPerMinute = Number(rpm);
      const answer = await api<ApiKey>(resourcePath('apikeys'), {
        method: 'POST',
        query: { fieldManager: 'panel' },
        body: { apiVersion: 'catalyst.dev/v1alpha1', kind: 'ApiKey', metadata: { name: name.trim() }, spec },
      });
      const token = answer?.status?.token;
      if (!token) throw new Error('The API created the key but its answer carries no token (status.token).');
      onCreated(answer.metadata.name, token);
    });
  };
  return (
    <form className="card" onSubmit={submit} aria-labelledby="nk-title" style={{ marginBottom: 16 }}>
      <h2 id="nk-title" style={{ marginTop: 0 }}>
        New API key
      </h2>
      <ErrorAlert error={err} />
      <div className="form-grid">
        <div className="field">
          <label htmlFor="nk-name">Key name</label>
          <input id="nk-name" required value={name} onChange={(e) => setName(e.target.value)} autoComplete="off" />
          <FieldError id="nk-name" message={causeOf(err, 'metadata.name')} />
        </div>
        <div className="field">
          <label htmlFor="nk-description">Description</label>
          <input id="nk-description" value={description} onChange={(e) => setDescription(e.target.value)} placeholder="what the key is for" />
        </div>
        {showOwner && (
          <div className="field">
            <label htmlFor="nk-owner">Owner</label>
            <input id="nk-owner" required value={owner} onChange={(e) => setOwner(e.target.value)} />
            <FieldError id="nk-owner" message={causeOf(err, 'spec.owner')} />
          </div>
        )}
        <div className="field">
          <label htmlFor="nk-expiry">Expires</label>
          <select id="nk-expiry" value={expiry} onChange={(e) => setExpiry(e.target.value)}>
            {EXPIRY.map((x) => (
              <option key={x.value} value={x.value}>
                {x.label}
              </option>
            ))}
          </select>
          <FieldError id="nk-expiry" message={causeOf(err, 'spec.expiresAt')} />
        </div>
        {expiry === 'date' && (
          <div className="field">
            <label htmlFor="nk-date">Expiry date</label>
            <input id="nk-date" type="date" required value={date} onChange={(e) => setDate(e.target.value)} />
          </div>
        )}
        <div className="field">
          <label htmlFor="nk-rpm">Requests per minute</label>
          <input id="nk-rpm" type="number" min={1} max={100000} value={rpm} onChange={(e) => setRpm(e.target.value)} placeholder="server default (600)" />
          <FieldError id="nk-rpm" message={causeOf(err, 'spec.requestsPerMinute')} />
        </div>
      </div>
      <fieldset>
        <legend>Roles the key carries</legend>
        <p className="hint muted" style={{ marginTop: 0 }}>
          Without a role the key may do nothing. It never gets more than its owner holds.
        </p>
        {rows.map((r, i) => (
          <div className="form-grid" key={i} role="group" aria-label={`Grant ${i + 1}`}>
            <div className="field">
              <label htmlFor={`nk-role-${i}`}>Role {i + 1}</label>
              <input
                id={`nk-role-${i}`}
                list="nk-roles"
                value={r.role}
                onChange={(e) => setRow(i, 'role', e.target.value)}
                placeholder="viewer"
                autoComplete="off"
              />
              <FieldError id={`nk-role-${i}`} message={causeOf(err, `spec.roles[${i}]`)} />
            </div>
            <div className="field">
              <label htmlFor={`nk-ns-${i}`}>Namespace of role {i + 1}</label>
              <input id={`nk-ns-${i}`} value={r.namespace} onChange={(e) => setRow(i, 'namespace', e.target.value)} placeholder="empty: every namespace" />
            </div>
            <div className="field">
              <label htmlFor={`nk-names-${i}`}>Only these objects (role {i + 1})</label>
              <input id={`nk-names-${i}`} value={r.resourceNames} onChange={(e) => setRow(i, 'resourceNames', e.target.value)} placeholder="optional: names, commas" />
            </div>
            {rows.length > 1 && (
              <div className="field" style={{ justifyContent: 'flex-end' }}>
                <button type="button" onClick={() => setRows(rows.filter((_, j) => j !== i))}>
                  Remove role {i + 1}
                </button>
              </div>
            )}
          </div>
        ))}
        <datalist id="nk-roles">
          {roles.map((r) => (
            <option key={r.metadata.name} value={r.metadata.name} />
          ))}
        </datalist>
        <button type="button" onClick={() => setRows([...rows, { role: '', namespace: '', resourceNames: '' }])}>
          Add a role
        </button>
      </fieldset>
      {causeOf(err, 'spec.roles') && <FieldError id="nk-roles-all" message={causeOf(err, 'spec.roles')} />}
      <div className="toolbar">
        <button type="submit" className="primary" disabled={runner.busy}>
          Create API key
        </button>
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}

function KeyRow({ k, me }: { k: ApiKey; me?: string }) {
  const name = k.metadata.name;
  const canDeleteAny = useCan('delete', 'apikeys', undefined, name);
  // docs/auth.md: everyone may delete the keys they own (the access review does not count that)
  const canDelete = canDeleteAny === true || (!!me && k.spec?.owner === me);
  const canPatch = useCan('patch', 'apikeys', undefined, name);
  const runner = useRunner();
  const expired = isPast(k.spec?.expiresAt);
  return (
    <tr data-testid={`apikey-row-${name}`}>
      <td>
        <strong>{name}</strong>
        {k.status?.tokenPrefix && <div className="mono muted">{k.status.tokenPrefix}…</div>}
      </td>
      <td>{k.spec?.owner}</td>
      <td style={{ whiteSpace: 'normal' }}>{k.spec?.description ?? ''}</td>
      <td className="mono" style={{ whiteSpace: 'normal' }}>
        {(k.spec?.roles ?? []).map(grantText).join(', ') || <span className="muted">none</span>}
      </td>
      <td>
        {k.spec?.expiresAt ? (
          <>
            {expired && <span className="badge danger">Expired</span>} <Ago iso={k.spec.expiresAt} />
          </>
        ) : (
          <span className="muted">never</span>
        )}
      </td>
      <td>
        <Ago iso={k.status?.lastUsedTime} />
      </td>
      <td className="actions-cell">
        <div className="actions">
          {canPatch && <Link href={`/yaml/apikeys/${encodeURIComponent(name)}`}>Edit YAML</Link>}
          {canDelete && (
            <ConfirmButton
              confirm={`Revoke ${name} now`}
              onConfirm={async () => void (await runner.run(() => api(resourcePath('apikeys', undefined, name), { method: 'DELETE' })))}
            >
              Revoke {name}
            </ConfirmButton>
          )}
        </div>
        <ErrorAlert error={runner.error} />
      </td>
    </tr>
  );
}

export function ApiKeys() {
  const who = useWhoAmI();
  const me = who.data?.user ?? undefined;
  const canListAll = useCan('list', 'apikeys');
  const canListRoles = useCan('list', 'roles');
  const all = useLiveList<ApiKey>('apikeys', undefined, {}, canListAll === true);
  // without the right to list every key, a user lists their own (docs/auth.md)
  const mine = useLiveList<ApiKey>('apikeys', undefined, { fieldSelector: `spec.owner=${me ?? ''}` }, canListAll === false && !!me);
  const list = canListAll ? all : mine;
  const roles = useLiveList<Role>('roles', undefined, {}, canListRoles === true);
  const [onlyMine, setOnlyMine] = useState(false);
  const [creating, setCreating] = useState(false);
  const [secret, setSecret] = useState<{ name: string; token: string } | null>(null);
  const rows = useMemo(
    () =>
      list.items
        .filter((k) => !onlyMine || k.spec?.owner === me)
        .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name)),
    [list.items, onlyMine, me],
  );
  const sortedRoles = useMemo(() => [...roles.items].sort((a, b) => a.metadata.name.localeCompare(b.metadata.name)), [roles.items]);
  // any user (or key) may make keys of their own (docs/auth.md); nodes have no user
  const canCreate = !!me;

  return (
    <section aria-labelledby="keys-title">
      <ListToolbar
        id="keys-title"
        title="API keys"
        loading={list.isLoading}
        count={`${rows.length} keys`}
      >
        {canListAll && (
          <label className="inline-field" style={{ fontWeight: 'normal' }}>
            <input type="checkbox" checked={onlyMine} onChange={(e) => setOnlyMine(e.target.checked)} /> Only my keys
          </label>
        )}
        {canCreate && !creating && (
          <button type="button" className="primary" onClick={() => setCreating(true)}>
            New API key
          </button>
        )}
      </ListToolbar>
      {creating && me && (
        <NewKeyForm
          me={me}
          roles={sortedRoles}
          showOwner={canListAll === true}
          onCancel={() => setCreating(false)}
          onCreated={(name, token) => {
            setCreating(false);
            setSecret({ name, token });
          }}
        />
      )}
      {secret && <SecretDialog name={secret.name} token={secret.token} onClose={() => setSecret(null)} />}
      <ErrorAlert error={list.error} />
      <DataTable
        label="API keys"
        columns={['Name', 'Owner', 'Description', 'Roles', 'Expires', 'Last used', 'Actions']}
        empty={!list.isLoading && rows.length === 0 ? 'No API key yet.' : null}
      >
        {rows.map((k) => (
          <KeyRow key={k.metadata.name} k={k} me={me} />
        ))}
      </DataTable>
    </section>
  );
}

import { useMemo, useState, type FormEvent } from 'react';
import { Link } from 'wouter';

import { api, resourcePath } from '../api/client';
import { useCan, useLiveList } from '../api/hooks';
import { keyOf } from '../api/watch';
import { causeOf, ConfirmButton, ErrorAlert, FieldError, NamespaceField, useNamespaceScope, useRunner, DataTable } from '../components/AdminKit';
import {
  allows,
  bindingFromForm,
  isBuiltin,
  otherVerbs,
  ruleMatrix,
  subjectsText,
  VERBS,
  type Binding,
  type BindingForm,
  type Role,
} from '../lib/rbac';
import type { User } from './Users';
import '../components/AdminKit.css';

function RuleTable({ role }: { role: Role }) {
  const rows = ruleMatrix(role.spec?.rules);
  if (rows.length === 0) return <p className="muted">This role allows nothing.</p>;
  return (
    <div className="table-wrap">
      <table className="matrix" aria-label={`Rules of ${role.metadata.name}`}>
        <thead>
          <tr>
            <th scope="col">Resource</th>
            {VERBS.map((v) => (
              <th scope="col" key={v}>
                {v}
              </th>
            ))}
            <th scope="col">Only names</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => (
            <tr key={`${r.resource}/${r.resourceNames.join(',')}`}>
              <th scope="row" className="mono">
                {r.resource}
                {otherVerbs(r).length > 0 && <span className="muted"> (+{otherVerbs(r).join(', ')})</span>}
              </th>
              {VERBS.map((v) => (
                <td key={v}>{allows(r, v) ? <span aria-label="allowed">✓</span> : <span aria-label="not allowed" className="muted">·</span>}</td>
              ))}
              <td className="mono">{r.resourceNames.join(', ') || <span className="muted">all</span>}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function RoleRow({ role, canDelete }: { role: Role; canDelete: boolean }) {
  const [open, setOpen] = useState(false);
  const runner = useRunner();
  const name = role.metadata.name;
  const builtin = isBuiltin(role);
  return (
    <>
      <tr data-testid={`role-row-${name}`}>
        <td>
          <button type="button" aria-expanded={open} onClick={() => setOpen(!open)} aria-label={`${open ? 'Hide' : 'Show'} rules of ${name}`}>
            {open ? '▾' : '▸'}
          </button>{' '}
          <strong>{name}</strong>
        </td>
        <td style={{ whiteSpace: 'normal' }}>{role.spec?.description ?? ''}</td>
        <td>{builtin ? <span className="badge info">Built-in (read-only)</span> : <span className="muted">Custom</span>}</td>
        <td>{role.spec?.rules?.length ?? 0}</td>
        <td className="actions-cell">
          {!builtin && (
            <div className="actions">
              <Link href={`/yaml/roles/${encodeURIComponent(name)}`}>Edit YAML</Link>
              {canDelete && (
                <ConfirmButton
                  confirm={`Delete ${name} now`}
                  onConfirm={async () => void (await runner.run(() => api(resourcePath('roles', undefined, name), { method: 'DELETE' })))}
                >
                  Delete {name}
                </ConfirmButton>
              )}
            </div>
          )}
          <ErrorAlert error={runner.error} />
        </td>
      </tr>
      {open && (
        <tr className="detail-row">
          <td colSpan={5}>
            <RuleTable role={role} />
          </td>
        </tr>
      )}
    </>
  );
}

function BindingRow({ b }: { b: Binding }) {
  const ns = b.metadata.namespace;
  const plural = ns ? 'rolebindings' : 'clusterrolebindings';
  const canDelete = useCan('delete', plural, ns, b.metadata.name);
  const runner = useRunner();
  const name = b.metadata.name;
  return (
    <tr data-testid={`binding-row-${keyOf(b)}`}>
      <td>
        <strong>{name}</strong>
      </td>
      <td>{ns ?? <span className="muted">cluster-wide</span>}</td>
      <td className="mono">{b.spec?.roleRef}</td>
      <td style={{ whiteSpace: 'normal' }}>{subjectsText(b.spec?.subjects)}</td>
      <td className="mono">{b.spec?.resourceNames?.join(', ') || <span className="muted">all</span>}</td>
      <td className="actions-cell">
        <div className="actions">
          <Link href={ns ? `/yaml/${plural}/${encodeURIComponent(ns)}/${encodeURIComponent(name)}` : `/yaml/${plural}/${encodeURIComponent(name)}`}>
            Edit YAML
          </Link>
          {canDelete && (
            <ConfirmButton
              confirm={`Delete ${name} now`}
              onConfirm={async () => void (await runner.run(() => api(resourcePath(plural, ns, name), { method: 'DELETE' })))}
            >
              Delete {name}
            </ConfirmButton>
          )}
        </div>
        <ErrorAlert error={runner.error} />
      </td>
    </tr>
  );
}

function BindingTable({ label, items, loading }: { label: string; items: Binding[]; loading: boolean }) {
  return (
    <DataTable
      label={label}
      columns={['Name', 'Namespace', 'Role', 'Subjects', 'Only names', 'Actions']}
      empty={!loading && items.length === 0 ? 'None.' : null}
    >
      {items.map((b) => (
        <BindingRow key={keyOf(b)} b={b} />
      ))}
    </DataTable>
  );
}

function NewBindingForm({ namespace, roles, users, onDone }: { namespace: string; roles: Role[]; users: User[]; onDone: () => void }) {
  const [cluster, setCluster] = useState(false);
  const [f, setF] = useState<BindingForm>({ namespace, name: '', role: '', subjectKind: 'User', subject: '', resourceNames: '' });
  const canNs = useCan('create', 'rolebindings', f.namespace || undefined);
  const canCluster = useCan('create', 'clusterrolebindings');
  const runner = useRunner();
  const set = (k: keyof BindingForm, v: string) => setF((old) => ({ ...old, [k]: v }));
  const submit = async (ev: FormEvent) => {
    ev.preventDefault();
    const ok = await runner.run(async () => {
      const { plural, body } = bindingFromForm({ ...f, namespace: cluster ? '' : f.namespace });
      await api(resourcePath(plural, body.metadata.namespace), { method: 'POST', query: { fieldManager: 'panel' }, body });
      return true;
    });
    if (ok) onDone();
  };
  const err = runner.error;
  const preview = bindingFromForm({ ...f, namespace: cluster ? '' : f.namespace }).body.metadata.name;
  const allowed = cluster ? canCluster : canNs;
  return (
    <form className="card" onSubmit={submit} aria-labelledby="nb-title" style={{ marginBottom: 16 }}>
      <h2 id="nb-title" style={{ marginTop: 0 }}>
        New binding
      </h2>
      <p className="muted" style={{ marginTop: 0 }}>
        Grants a role to a user, group or API key. Give one server's name under “Only these objects” to share just
        that server (e.g. role <span className="mono">control.console</span> for a subuser).
      </p>
      <ErrorAlert error={err} />
      <fieldset>
        <legend>Where</legend>
        <div className="radio-row">
          <label>
            <input type="radio" name="nb-scope" checked={!cluster} onChange={() => setCluster(false)} />
            In one namespace (RoleBinding)
          </label>
          <label>
            <input type="radio" name="nb-scope" checked={cluster} disabled={canCluster === false} onChange={() => setCluster(true)} />
            Cluster-wide (ClusterRoleBinding)
          </label>
        </div>
        {!cluster && (
          <div className="field">
            <label htmlFor="nb-namespace">Namespace</label>
            <input id="nb-namespace" required value={f.namespace} onChange={(e) => set('namespace', e.target.value)} />
            <FieldError id="nb-namespace" message={causeOf(err, 'metadata.namespace')} />
          </div>
        )}
      </fieldset>
      <div className="form-grid">
        <div className="field">
          <label htmlFor="nb-role">Role</label>
          {roles.length > 0 ? (
            <select id="nb-role" required value={f.role} onChange={(e) => set('role', e.target.value)}>
              <option value="">Choose a role…</option>
              {roles.map((r) => (
                <option key={r.metadata.name} value={r.metadata.name}>
                  {r.metadata.name}
                  {r.spec?.description ? ` — ${r.spec.description}` : ''}
                </option>
              ))}
            </select>
          ) : (
            <input id="nb-role" required value={f.role} onChange={(e) => set('role', e.target.value)} placeholder="control.console" />
          )}
          <FieldError id="nb-role" message={causeOf(err, 'spec.roleRef')} />
        </div>
        <div className="field">
          <label htmlFor="nb-kind">Subject kind</label>
          <select id="nb-kind" value={f.subjectKind} onChange={(e) => set('subjectKind', e.target.value)}>
            <option>User</option>
            <option>Group</option>
            <option>ApiKey</option>
          </select>
        </div>
        <div className="field">
          <label htmlFor="nb-subject">Subject name</label>
          <input
            id="nb-subject"
            required
            list={f.subjectKind === 'User' ? 'nb-users' : undefined}
            value={f.subject}
            onChange={(e) => set('subject', e.target.value)}
            autoComplete="off"
          />
          <datalist id="nb-users">
            {users.map((u) => (
              <option key={u.metadata.name} value={u.metadata.name} />
            ))}
          </datalist>
          <FieldError id="nb-subject" message={causeOf(err, 'spec.subjects')} />
        </div>
        <div className="field">
          <label htmlFor="nb-names">Only these objects</label>
          <input id="nb-names" value={f.resourceNames} onChange={(e) => set('resourceNames', e.target.value)} placeholder="survival" />
          <span className="hint">optional: names separated by commas</span>
          <FieldError id="nb-names" message={causeOf(err, 'spec.resourceNames')} />
        </div>
        <div className="field">
          <label htmlFor="nb-name">Binding name</label>
          <input id="nb-name" value={f.name} onChange={(e) => set('name', e.target.value)} placeholder={preview} autoComplete="off" />
          <span className="hint">optional: {preview || 'made from the subject and role'}</span>
          <FieldError id="nb-name" message={causeOf(err, 'metadata.name')} />
        </div>
      </div>
      <div className="toolbar">
        <button type="submit" className="primary" disabled={runner.busy || allowed === false}>
          Create binding
        </button>
        <button type="button" onClick={onDone}>
          Cancel
        </button>
        {allowed === false && <span className="muted">You may not create this kind of binding here.</span>}
      </div>
    </form>
  );
}

export function Roles() {
  const canListRoles = useCan('list', 'roles');
  const canCreateRole = useCan('create', 'roles');
  const canDeleteRole = useCan('delete', 'roles');
  const canListUsers = useCan('list', 'users');
  const canListCluster = useCan('list', 'clusterrolebindings');
  const scope = useNamespaceScope('rolebindings');
  const rbNs = scope.all ? undefined : scope.ns;
  const rbReady = scope.all !== undefined && (scope.all || !!scope.ns);
  const roles = useLiveList<Role>('roles', undefined, {}, canListRoles === true);
  const users = useLiveList<User>('users', undefined, {}, canListUsers === true);
  const rbs = useLiveList<Binding>('rolebindings', rbNs, {}, rbReady);
  const crbs = useLiveList<Binding>('clusterrolebindings', undefined, {}, canListCluster === true);
  const createNs = rbNs ?? 'default';
  const canCreateRb = useCan('create', 'rolebindings', createNs);
  const canCreateCrb = useCan('create', 'clusterrolebindings');
  const [creating, setCreating] = useState(false);
  const sortedRoles = useMemo(
    () =>
      [...roles.items].sort(
        (a, b) => Number(isBuiltin(b)) - Number(isBuiltin(a)) || a.metadata.name.localeCompare(b.metadata.name),
      ),
    [roles.items],
  );
  const sortedRbs = useMemo(() => [...rbs.items].sort((a, b) => keyOf(a).localeCompare(keyOf(b))), [rbs.items]);
  const sortedCrbs = useMemo(() => [...crbs.items].sort((a, b) => keyOf(a).localeCompare(keyOf(b))), [crbs.items]);
  const sortedUsers = useMemo(() => [...users.items].sort((a, b) => a.metadata.name.localeCompare(b.metadata.name)), [users.items]);

  return (
    <section aria-labelledby="roles-title" className="stack">
      <div>
        <div className="toolbar">
          <h1 id="roles-title" style={{ margin: 0 }}>
            Roles and bindings
          </h1>
          <span className="spacer" />
          {canCreateRole && (
            <Link href="/yaml/roles/new" className="button">
              New role in YAML
            </Link>
          )}
        </div>
        {canListRoles === false && <p className="notice">You may not list roles.</p>}
        <ErrorAlert error={roles.error} />
        {canListRoles && (
          <DataTable
            label="Roles"
            columns={['Role', 'Description', 'Kind', 'Rules', 'Actions']}
          >
            {sortedRoles.map((r) => (
              <RoleRow key={r.metadata.name} role={r} canDelete={canDeleteRole === true} />
            ))}
          </DataTable>
        )}
      </div>

      <div>
        <div className="toolbar">
          <h2 style={{ margin: 0 }}>Role bindings</h2>
          <span className="spacer" />
          {scope.all === false && <NamespaceField id="rb-ns" label="Show namespace" value={scope.ns} onChange={scope.setNs} />}
          {(canCreateRb || canCreateCrb) && !creating && (
            <button type="button" className="primary" onClick={() => setCreating(true)}>
              New binding
            </button>
          )}
        </div>
        {creating && (
          <NewBindingForm namespace={createNs} roles={sortedRoles} users={sortedUsers} onDone={() => setCreating(false)} />
        )}
        <ErrorAlert error={rbs.error} />
        <BindingTable label="Role bindings" items={sortedRbs} loading={rbs.isLoading} />
      </div>

      {canListCluster && (
        <div>
          <h2>Cluster role bindings</h2>
          <ErrorAlert error={crbs.error} />
          <BindingTable label="Cluster role bindings" items={sortedCrbs} loading={crbs.isLoading} />
        </div>
      )}
    </section>
  );
}

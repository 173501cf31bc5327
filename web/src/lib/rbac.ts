// Roles, bindings and API-key grants as the panel shows and writes them (pure).

import type { KObject } from '../api/types';

export const BUILTIN_LABEL = 'catalyst.dev/builtin';

/** The request verbs, in the order the panel shows them. */
export const VERBS = ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete', 'deletecollection'] as const;

export interface PolicyRule {
  apiGroups?: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}

export interface Subject {
  kind: 'User' | 'Group' | 'ApiKey' | 'Node' | string;
  name: string;
}

export interface Role extends KObject {
  spec?: { description?: string | null; rules?: PolicyRule[] };
}

export interface Binding extends KObject {
  spec?: { roleRef: string; subjects: Subject[]; resourceNames?: string[] };
}

export interface RoleGrant {
  role: string;
  namespace?: string;
  resourceNames?: string[];
}

/** Whether a Role is one the server creates and restores at every start. */
export function isBuiltin(o: KObject): boolean {
  const v = o.metadata.labels?.[BUILTIN_LABEL];
  return v !== undefined && v !== 'false';
}

/** One row of a role's table: a resource (narrowed to names or not) and the verbs allowed on it. */
export interface MatrixRow {
  resource: string;
  resourceNames: string[];
  /** `*` when every verb is allowed */
  verbs: Set<string>;
}

/** The rules of a role as rows of resource × verb (rules naming the same resources merge). */
export function ruleMatrix(rules: PolicyRule[] | undefined): MatrixRow[] {
  const rows = new Map<string, MatrixRow>();
  for (const r of rules ?? []) {
    const names = [...(r.resourceNames ?? [])].sort();
    for (const resource of r.resources ?? []) {
      const k = `${resource}\u0000${names.join(',')}`;
      let row = rows.get(k);
      if (!row) {
        row = { resource, resourceNames: names, verbs: new Set() };
        rows.set(k, row);
      }
      for (const v of r.verbs ?? []) row.verbs.add(v);
    }
  }
  return [...rows.values()].sort(
    (a, b) => a.resource.localeCompare(b.resource) || a.resourceNames.join().localeCompare(b.resourceNames.join()),
  );
}

/** Whether a row allows `verb` (directly or by `*`). */
export function allows(row: MatrixRow, verb: string): boolean {
  return row.verbs.has('*') || row.verbs.has(verb);
}

/** The verbs of a row the fixed columns do not show (none, or what a `*` role has). */
export function otherVerbs(row: MatrixRow): string[] {
  return [...row.verbs].filter((v) => v !== '*' && !(VERBS as readonly string[]).includes(v)).sort();
}

/** "a, b , c" → ["a","b","c"] (blanks dropped, duplicates kept once). */
export function splitList(s: string): string[] {
  return [...new Set(s.split(/[,\s]+/).map((x) => x.trim()).filter(Boolean))];
}

/** A valid object name (DNS subdomain) made from parts: lowercase, other characters → '-'. */
export function nameFrom(...parts: (string | undefined)[]): string {
  const labels = parts
    .filter((p): p is string => !!p)
    .join('-')
    .toLowerCase()
    .split('.')
    .map((l) => l.replace(/[^a-z0-9-]+/g, '-').replace(/-{2,}/g, '-').replace(/^-+|-+$/g, ''))
    .filter(Boolean);
  return labels.join('.').slice(0, 253).replace(/[-.]+$/, '');
}

export interface BindingForm {
  /** empty: a ClusterRoleBinding */
  namespace: string;
  name: string;
  role: string;
  subjectKind: string;
  subject: string;
  /** comma-separated */
  resourceNames: string;
}

/** The RoleBinding (namespace given) or ClusterRoleBinding the form describes. */
export function bindingFromForm(f: BindingForm): { plural: 'rolebindings' | 'clusterrolebindings'; body: Binding } {
  const names = splitList(f.resourceNames);
  const cluster = !f.namespace.trim();
  const spec: Binding['spec'] = {
    roleRef: f.role.trim(),
    subjects: [{ kind: f.subjectKind, name: f.subject.trim() }],
  };
  if (names.length) spec.resourceNames = names;
  const metadata: Binding['metadata'] = {
    name: f.name.trim() || nameFrom(f.subject, f.role, ...names.slice(0, 1)),
  };
  if (!cluster) metadata.namespace = f.namespace.trim();
  return {
    plural: cluster ? 'clusterrolebindings' : 'rolebindings',
    body: {
      apiVersion: 'catalyst.dev/v1alpha1',
      kind: cluster ? 'ClusterRoleBinding' : 'RoleBinding',
      metadata,
      spec,
    },
  };
}

/** "User bob, Group staff". */
export function subjectsText(subjects: Subject[] | undefined): string {
  return (subjects ?? []).map((s) => `${s.kind} ${s.name}`).join(', ');
}

/** A grant as catalystctl writes it: `ROLE[@NAMESPACE][:NAME1,NAME2]`. */
export function grantText(g: RoleGrant): string {
  let s = g.role;
  if (g.namespace) s += `@${g.namespace}`;
  if (g.resourceNames?.length) s += `:${g.resourceNames.join(',')}`;
  return s;
}

export interface GrantRow {
  role: string;
  namespace: string;
  resourceNames: string;
}

/** The key's `spec.roles` from the form's rows (rows without a role are left out). */
export function grantsFromRows(rows: GrantRow[]): RoleGrant[] {
  return rows
    .filter((r) => r.role.trim())
    .map((r) => {
      const g: RoleGrant = { role: r.role.trim() };
      if (r.namespace.trim()) g.namespace = r.namespace.trim();
      const names = splitList(r.resourceNames);
      if (names.length) g.resourceNames = names;
      return g;
    });
}

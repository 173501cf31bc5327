import { describe, expect, it } from 'vitest';
import {
  allows,
  bindingFromForm,
  grantsFromRows,
  grantText,
  isBuiltin,
  nameFrom,
  otherVerbs,
  ruleMatrix,
  splitList,
  subjectsText,
} from './rbac';

describe('ruleMatrix', () => {
  it('merges rules per resource and keeps names apart', () => {
    const rows = ruleMatrix([
      { resources: ['gameservers'], verbs: ['get', 'list', 'watch'] },
      { resources: ['gameservers/console', 'gameservers/logs'], verbs: ['get'] },
      { resources: ['gameservers'], verbs: ['patch'] },
      { resources: ['gameservers'], verbs: ['delete'], resourceNames: ['b', 'a'] },
    ]);
    expect(rows.map((r) => `${r.resource}:${r.resourceNames.join(',')}`)).toEqual([
      'gameservers:',
      'gameservers:a,b',
      'gameservers/console:',
      'gameservers/logs:',
    ]);
    expect([...rows[0].verbs].sort()).toEqual(['get', 'list', 'patch', 'watch']);
    expect(allows(rows[0], 'patch')).toBe(true);
    expect(allows(rows[0], 'delete')).toBe(false);
    expect(allows(rows[1], 'delete')).toBe(true);
  });
  it('reads * as every verb and shows unknown verbs apart', () => {
    const [row] = ruleMatrix([{ resources: ['*'], verbs: ['*', 'escalate'] }]);
    expect(allows(row, 'deletecollection')).toBe(true);
    expect(otherVerbs(row)).toEqual(['escalate']);
    expect(ruleMatrix(undefined)).toEqual([]);
  });
});

describe('names and lists', () => {
  it('makes valid object names', () => {
    expect(nameFrom('Bob', 'control.console', 'survival')).toBe('bob-control.console-survival');
    expect(nameFrom('alice@example.org', 'viewer')).toBe('alice-example.org-viewer');
    expect(nameFrom('--x--', undefined, '..y..')).toBe('x.y');
    expect(nameFrom('a'.repeat(300)).length).toBe(253);
  });
  it('splits lists', () => {
    expect(splitList(' a, b ,,c a ')).toEqual(['a', 'b', 'c']);
    expect(splitList('')).toEqual([]);
  });
  it('knows built-in roles by their label', () => {
    expect(isBuiltin({ metadata: { name: 'admin', labels: { 'catalyst.dev/builtin': 'true' } } })).toBe(true);
    expect(isBuiltin({ metadata: { name: 'mine' } })).toBe(false);
  });
});

describe('bindingFromForm', () => {
  it('makes a RoleBinding for one server', () => {
    const { plural, body } = bindingFromForm({
      namespace: 'default',
      name: '',
      role: 'control.console',
      subjectKind: 'User',
      subject: 'bob',
      resourceNames: 'survival',
    });
    expect(plural).toBe('rolebindings');
    expect(body).toEqual({
      apiVersion: 'catalyst.dev/v1alpha1',
      kind: 'RoleBinding',
      metadata: { name: 'bob-control.console-survival', namespace: 'default' },
      spec: { roleRef: 'control.console', subjects: [{ kind: 'User', name: 'bob' }], resourceNames: ['survival'] },
    });
  });
  it('makes a ClusterRoleBinding without a namespace', () => {
    const { plural, body } = bindingFromForm({
      namespace: ' ',
      name: 'staff-viewers',
      role: 'viewer',
      subjectKind: 'Group',
      subject: 'staff',
      resourceNames: '',
    });
    expect(plural).toBe('clusterrolebindings');
    expect(body.kind).toBe('ClusterRoleBinding');
    expect(body.metadata).toEqual({ name: 'staff-viewers' });
    expect(body.spec?.resourceNames).toBeUndefined();
    expect(subjectsText(body.spec?.subjects)).toBe('Group staff');
  });
});

describe('API key grants', () => {
  it('builds spec.roles from rows and writes them as catalystctl does', () => {
    const g = grantsFromRows([
      { role: 'billing', namespace: 'customers', resourceNames: '' },
      { role: '', namespace: 'x', resourceNames: '' },
      { role: 'control.console', namespace: 'games', resourceNames: 'survival, creative' },
      { role: 'viewer', namespace: '', resourceNames: '' },
    ]);
    expect(g).toEqual([
      { role: 'billing', namespace: 'customers' },
      { role: 'control.console', namespace: 'games', resourceNames: ['survival', 'creative'] },
      { role: 'viewer' },
    ]);
    expect(g.map(grantText)).toEqual(['billing@customers', 'control.console@games:survival,creative', 'viewer']);
  });
});

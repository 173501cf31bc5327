import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

import { webServer } from './fixtures/gameserver';
import { changedLines, changedPaths, diffSummary, lineDiff, locate, normalise, pathKeys, toYaml } from './yamlDiff';

describe('normalise', () => {
  it('drops status and what the server owns, and orders keys', () => {
    const n = normalise<Record<string, any>>(webServer());
    expect(n.status).toBeUndefined();
    expect(Object.keys(n)).toEqual(['apiVersion', 'kind', 'metadata', 'spec']);
    expect(n.metadata).toEqual({ name: 'web', namespace: 'default', labels: { game: 'demo' } });
    expect(Object.keys(n.spec)).toEqual(['image', 'nodeName', 'ports', 'resources', 'startup', 'variables']);
    expect(Object.keys(n.spec.resources)).toEqual(['cpu', 'memory', 'pids']);
    expect(n.spec.ports).toEqual([{ containerPort: 8080, name: 'game', protocol: 'TCP' }]);
  });

  it('does not change its input and gives the same text whatever the key order', () => {
    const a = webServer();
    const before = JSON.stringify(a);
    const b = webServer();
    b.spec = Object.fromEntries(Object.entries(b.spec!).reverse());
    b.metadata = { ...b.metadata, labels: b.metadata.labels, name: 'web' };
    expect(toYaml(normalise(a))).toBe(toYaml(normalise(b)));
    expect(JSON.stringify(a)).toBe(before);
  });

  it('keeps annotations and drops what controllers own (finalizers, ownerReferences)', () => {
    const g = webServer();
    g.metadata.finalizers = ['catalyst.dev/backups'];
    (g.metadata as unknown as Record<string, unknown>).ownerReferences = [{ kind: 'Backup', name: 'b' }];
    g.metadata.annotations = { 'a.b/c': 'x' };
    const n = normalise<Record<string, any>>(g);
    expect(Object.keys(n.metadata)).toEqual(['name', 'namespace', 'labels', 'annotations']);
  });
});

describe('toYaml', () => {
  it('round-trips and does not fold long lines', () => {
    const n = normalise(webServer());
    const text = toYaml(n);
    expect(parse(text)).toEqual(n);
    expect(text).toContain('  startup: echo welcome to {{MOTD}} > /home/container/index.html; httpd');
    expect(text).toContain("    MOTD: Catalyst's demo\n");
    expect(text.startsWith('apiVersion: catalyst.dev/v1alpha1\nkind: GameServer\nmetadata:\n  name: web\n')).toBe(true);
  });
});

describe('lineDiff and diffSummary', () => {
  it('shows one line removed and one added for a changed variable', () => {
    const a = toYaml(normalise(webServer()));
    const b = toYaml(normalise(webServer('hello')));
    const d = lineDiff(a, b);
    expect(d.added).toBe(1);
    expect(d.removed).toBe(1);
    const changed = d.lines.filter((l) => l.op !== ' ');
    expect(changed).toEqual([
      { op: '-', text: "    MOTD: Catalyst's demo" },
      { op: '+', text: '    MOTD: hello' },
    ]);
    expect(changedLines(d, 1).map((l) => l.op + l.text)).toEqual([
      '   variables:',
      "-    MOTD: Catalyst's demo",
      '+    MOTD: hello',
    ]);
    const two = lineDiff('a: 1\nb: 2\nc: 3\nd: 4\ne: 5\n', 'a: 0\nb: 2\nc: 3\nd: 4\ne: 6\n');
    expect(changedLines(two, 1).map((l) => l.op + l.text)).toEqual(['-a: 1', '+a: 0', ' b: 2', ' …', ' d: 4', '-e: 5', '+e: 6']);
  });

  it('summarises with the changed paths, ignoring status and server metadata', () => {
    const live = webServer();
    const next = webServer('hello');
    next.metadata.resourceVersion = '413';
    next.metadata.managedFields = [];
    next.status = { phase: 'Stopping' };
    expect(diffSummary(live, next)).toBe('2 lines changed: spec.variables.MOTD');
    expect(diffSummary(live, webServer())).toBe('No changes');
    expect(diffSummary(undefined, live)).toMatch(/^\d+ lines changed$/);
  });

  it('counts added lines alone', () => {
    const d = lineDiff('a: 1\n', 'a: 1\nb: 2\nc: 3\n');
    expect([d.added, d.removed]).toEqual([2, 0]);
  });
});

describe('changedPaths', () => {
  it('names leaves, list items by index, and added or removed subtrees', () => {
    const a = normalise(webServer());
    const b = normalise<Record<string, any>>(webServer('hello'));
    b.spec.ports = [{ containerPort: 8081, name: 'game', protocol: 'TCP' }, { containerPort: 9000 }];
    b.spec.variables.EXTRA = '1';
    delete b.spec.nodeName;
    b.metadata.labels = { game: 'demo', tier: 'gold' };
    expect(changedPaths(a, b)).toEqual([
      'metadata.labels.tier',
      'spec.nodeName',
      'spec.ports[0].containerPort',
      'spec.ports[1]',
      'spec.variables.EXTRA',
      'spec.variables.MOTD',
    ]);
    expect(changedPaths(a, normalise(webServer()))).toEqual([]);
  });

  it('treats a map that became a scalar as one change', () => {
    expect(changedPaths({ spec: { a: { b: 1 } } }, { spec: { a: 'x' } })).toEqual(['spec.a']);
  });
});

describe('pathKeys and locate', () => {
  it('reads the field paths of API causes', () => {
    expect(pathKeys('spec.ports[1].containerPort')).toEqual(['spec', 'ports', 1, 'containerPort']);
    expect(pathKeys('spec.variables[MAX_PLAYERS]')).toEqual(['spec', 'variables', 'MAX_PLAYERS']);
  });

  it('finds the line of a field in the editor text, or of its nearest parent', () => {
    const text = toYaml(normalise(webServer()));
    const lines = text.split('\n');
    const at = locate(text, 'spec.variables.MOTD');
    expect(lines[at!.line - 1]).toBe("    MOTD: Catalyst's demo");
    expect(at!.column).toBe(5);
    const port = locate(text, 'spec.ports[0].containerPort');
    expect(lines[port!.line - 1]).toContain('containerPort: 8080');
    const missing = locate(text, 'spec.variables[NOPE]');
    expect(lines[missing!.line - 1]).toBe('  variables:');
    expect(locate('', 'spec')).toBeUndefined();
  });
});

import { describe, expect, it } from 'vitest';

import { lines, nameProblem, newestFirst, restoresInto, restoreTarget, stampedName, type BackupLike, type RestoreLike } from './jobs';

const at = new Date('2026-11-30T21:05:09Z');
const backup = (name: string, gameServer: string): BackupLike => ({ metadata: { name }, spec: { gameServer } });
const restore = (name: string, b: string, gs?: string, ts = '2026-01-01T00:00:00Z'): RestoreLike => ({
  metadata: { name, creationTimestamp: ts },
  spec: { backup: b, gameServer: gs },
});

describe('jobs', () => {
  it('makes stamped names that are DNS labels', () => {
    expect(stampedName('mc', at)).toBe('mc-20261130-210509');
    expect(stampedName('My_Server', at)).toBe('my-server-20261130-210509');
    const long = stampedName('x'.repeat(80), at);
    expect(long.length).toBeLessThanOrEqual(63);
    expect(nameProblem(long)).toBeUndefined();
    expect(stampedName('---', at)).toBe('20261130-210509');
  });
  it('checks names', () => {
    expect(nameProblem('nightly-1')).toBeUndefined();
    expect(nameProblem('')).toBeDefined();
    expect(nameProblem('Nightly')).toBeDefined();
    expect(nameProblem('-a')).toBeDefined();
    expect(nameProblem('a'.repeat(64))).toBeDefined();
  });
  it('splits lines', () => {
    expect(lines(' logs/ \n\n*.tmp\n')).toEqual(['logs/', '*.tmp']);
  });
  it('finds the restores into a server', () => {
    const backups = new Map([
      ['b1', backup('b1', 'mc')],
      ['b2', backup('b2', 'other')],
    ]);
    expect(restoreTarget(restore('r', 'b1'), backups)).toBe('mc');
    expect(restoreTarget(restore('r', 'b2', 'mc'), backups)).toBe('mc');
    expect(restoreTarget(restore('r', 'gone'), backups)).toBeUndefined();
    const rs = [
      restore('old', 'b1', undefined, '2026-01-01T00:00:00Z'),
      restore('elsewhere', 'b1', 'other'),
      restore('new', 'b2', 'mc', '2026-02-01T00:00:00Z'),
    ];
    expect(restoresInto(rs, backups, 'mc').map((r) => r.metadata.name)).toEqual(['new', 'old']);
  });
  it('sorts newest first', () => {
    const a = { metadata: { name: 'a', creationTimestamp: '2026-01-01T00:00:00Z' } };
    const b = { metadata: { name: 'b', creationTimestamp: '2026-03-01T00:00:00Z' } };
    expect(newestFirst([a, b]).map((x) => x.metadata.name)).toEqual(['b', 'a']);
  });
});

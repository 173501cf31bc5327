import { describe, expect, it } from 'vitest';
import {
  freshCursor,
  historyDown,
  historyKey,
  historyUp,
  loadHistory,
  pushHistory,
  saveHistory,
} from './consoleHistory';

describe('pushHistory', () => {
  it('appends, skips blanks and a repeat of the last command', () => {
    let h = pushHistory([], 'say hi');
    h = pushHistory(h, 'say hi');
    h = pushHistory(h, '   ');
    h = pushHistory(h, 'list');
    h = pushHistory(h, 'say hi');
    expect(h).toEqual(['say hi', 'list', 'say hi']);
  });
  it('keeps the newest 100', () => {
    let h: string[] = [];
    for (let i = 0; i < 150; i++) h = pushHistory(h, `c${i}`);
    expect(h).toHaveLength(100);
    expect(h[0]).toBe('c50');
    expect(h[99]).toBe('c149');
  });
  it('does not change the list it is given', () => {
    const h = ['a'];
    pushHistory(h, 'b');
    expect(h).toEqual(['a']);
  });
});

describe('storage', () => {
  it('round-trips per server and survives garbage', () => {
    const m = new Map<string, string>();
    const s = { getItem: (k: string) => m.get(k) ?? null, setItem: (k: string, v: string) => void m.set(k, v) };
    const k = historyKey('default', 'web');
    expect(k).not.toBe(historyKey('default', 'web2'));
    saveHistory(s, k, ['a', 'b']);
    expect(loadHistory(s, k)).toEqual(['a', 'b']);
    expect(loadHistory(s, historyKey('other', 'web'))).toEqual([]);
    m.set(k, '{not json');
    expect(loadHistory(s, k)).toEqual([]);
    m.set(k, JSON.stringify({ a: 1 }));
    expect(loadHistory(s, k)).toEqual([]);
    m.set(k, JSON.stringify(['x', 3, 'y']));
    expect(loadHistory(s, k)).toEqual(['x', 'y']);
    m.set(k, JSON.stringify(Array.from({ length: 120 }, (_, i) => `c${i}`)));
    expect(loadHistory(s, k)).toHaveLength(100);
  });
  it('ignores a storage that throws', () => {
    const s = {
      getItem: () => {
        throw new Error('denied');
      },
      setItem: () => {
        throw new Error('full');
      },
    };
    expect(loadHistory(s, 'k')).toEqual([]);
    expect(() => saveHistory(s, 'k', ['a'])).not.toThrow();
  });
});

describe('walking with the arrow keys', () => {
  const h = ['one', 'two', 'three'];
  it('goes up to the oldest and down back to what was typed', () => {
    let c = freshCursor(h);
    let r = historyUp(h, c, 'draft');
    expect(r.value).toBe('three');
    r = historyUp(h, r.cursor, r.value);
    expect(r.value).toBe('two');
    r = historyUp(h, r.cursor, r.value);
    expect(r.value).toBe('one');
    r = historyUp(h, r.cursor, r.value);
    expect(r.value).toBe('one');
    r = historyDown(h, r.cursor, r.value);
    expect(r.value).toBe('two');
    r = historyDown(h, r.cursor, r.value);
    expect(r.value).toBe('three');
    r = historyDown(h, r.cursor, r.value);
    expect(r.value).toBe('draft');
    r = historyDown(h, r.cursor, 'draft');
    expect(r.value).toBe('draft');
    c = r.cursor;
    expect(c.pos).toBe(3);
  });
  it('does nothing without history', () => {
    const r = historyUp([], freshCursor([]), 'x');
    expect(r.value).toBe('x');
    expect(historyDown([], r.cursor, 'x').value).toBe('x');
  });
});

import { describe, expect, it } from 'vitest';
import { expiryFrom, isPast, parseDuration, relativeTime } from './time';

const NOW = Date.parse('2026-11-30T12:00:00Z');

describe('relativeTime', () => {
  it('says how long ago or until', () => {
    expect(relativeTime('2026-11-30T11:59:58Z', NOW)).toBe('just now');
    expect(relativeTime('2026-11-30T11:59:15Z', NOW)).toBe('45 s ago');
    expect(relativeTime('2026-11-30T11:57:00Z', NOW)).toBe('3 min ago');
    expect(relativeTime('2026-11-30T14:00:00Z', NOW)).toBe('in 2 h');
    expect(relativeTime('2026-11-25T12:00:00Z', NOW)).toBe('5 d ago');
    expect(relativeTime(undefined, NOW)).toBe('—');
    expect(relativeTime('nonsense', NOW)).toBe('nonsense');
  });
});

describe('durations and expiry', () => {
  it('parses durations', () => {
    expect(parseDuration('30d')).toBe(30 * 86400e3);
    expect(parseDuration('90m')).toBe(90 * 60e3);
    expect(parseDuration('1w')).toBe(7 * 86400e3);
    expect(parseDuration('never')).toBeUndefined();
    expect(parseDuration('3x')).toBeUndefined();
  });
  it('makes an expiry time', () => {
    expect(expiryFrom('1d', NOW)).toBe('2026-12-01T12:00:00.000Z');
    expect(expiryFrom('', NOW)).toBeUndefined();
  });
  it('knows the past', () => {
    expect(isPast('2026-11-30T11:00:00Z', NOW)).toBe(true);
    expect(isPast('2026-11-30T13:00:00Z', NOW)).toBe(false);
    expect(isPast(undefined, NOW)).toBe(false);
  });
});

import { describe, expect, it } from 'vitest';
import { formatBinary, formatCores, parseQuantity, percent } from './quantity';

describe('parseQuantity', () => {
  it('reads cpu and memory quantities', () => {
    expect(parseQuantity('500m')).toBeCloseTo(0.5);
    expect(parseQuantity('2')).toBe(2);
    expect(parseQuantity(4)).toBe(4);
    expect(parseQuantity('1.5')).toBe(1.5);
    expect(parseQuantity('4Gi')).toBe(4 * 1024 ** 3);
    expect(parseQuantity('512Mi')).toBe(512 * 1024 ** 2);
    expect(parseQuantity('1G')).toBe(1e9);
    expect(parseQuantity('1e3')).toBe(1000);
    expect(parseQuantity('.5Ki')).toBe(512);
  });
  it('refuses what is not a quantity', () => {
    expect(parseQuantity(undefined)).toBeUndefined();
    expect(parseQuantity(null)).toBeUndefined();
    expect(parseQuantity('4GB')).toBeUndefined();
    expect(parseQuantity('')).toBeUndefined();
    expect(parseQuantity('abc')).toBeUndefined();
  });
});

describe('formatting', () => {
  it('formats cores', () => {
    expect(formatCores(0.25)).toBe('250m');
    expect(formatCores(4)).toBe('4');
    expect(formatCores(1.5)).toBe('1.5');
    expect(formatCores(undefined)).toBe('—');
  });
  it('formats bytes in binary units', () => {
    expect(formatBinary(512)).toBe('512 B');
    expect(formatBinary(4 * 1024 ** 3)).toBe('4 GiB');
    expect(formatBinary(1.5 * 1024 ** 2)).toBe('1.5 MiB');
    expect(formatBinary(200 * 1024 ** 3)).toBe('200 GiB');
  });
  it('gives percentages only of known wholes', () => {
    expect(percent(1, 4)).toBe(25);
    expect(percent(1, 0)).toBeUndefined();
    expect(percent(undefined, 4)).toBeUndefined();
  });
});

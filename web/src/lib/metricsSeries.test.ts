import { describe, expect, it } from 'vitest';
import { addSample, formatCores, formatRate, latest, rate, toSeries, toSnapshot, WINDOW_MS, type Sample } from './metricsSeries';

function sample(at: number, over: Partial<Sample> = {}): Sample {
  return { at, cpuUsageNs: 0, memoryBytes: 0, memoryLimitBytes: 0, networkRxBytes: 0, networkTxBytes: 0, ...over };
}

describe('toSnapshot', () => {
  it('reads the nodelet answer and fills gaps with 0', () => {
    expect(toSnapshot({ cpuUsageNs: 5, memoryBytes: 7, pids: 2, extra: 'x' })).toEqual({
      cpuUsageNs: 5,
      memoryBytes: 7,
      memoryLimitBytes: 0,
      networkRxBytes: 0,
      networkTxBytes: 0,
      diskUsedBytes: 0,
      diskLimitBytes: 0,
      pids: 2,
    });
    expect(toSnapshot(null)).toBeNull();
    expect(toSnapshot('x')).toBeNull();
  });
});

describe('addSample', () => {
  it('keeps ten minutes', () => {
    let s: Sample[] = [];
    for (let i = 0; i <= 200; i++) s = addSample(s, sample(i * 5000));
    expect(s[s.length - 1].at).toBe(1_000_000);
    expect(s[0].at).toBe(1_000_000 - WINDOW_MS);
    expect(s).toHaveLength(121);
  });
  it('drops samples from the future (a clock step back)', () => {
    const s = addSample([sample(10_000), sample(20_000)], sample(15_000));
    expect(s.map((x) => x.at)).toEqual([10_000, 15_000]);
  });
  it('does not change its input', () => {
    const before = [sample(1)];
    addSample(before, sample(2));
    expect(before).toHaveLength(1);
  });
});

describe('rates', () => {
  it('is per second, and nothing across a reset', () => {
    expect(rate(100, 600, 5000)).toBe(100);
    expect(rate(600, 100, 5000)).toBeNull();
    expect(rate(1, 2, 0)).toBeNull();
  });
  it('makes the chart series', () => {
    const s = [
      sample(0, { cpuUsageNs: 0, memoryBytes: 10, memoryLimitBytes: 100, networkRxBytes: 0, networkTxBytes: 0 }),
      sample(5000, { cpuUsageNs: 2.5e9, memoryBytes: 20, memoryLimitBytes: 100, networkRxBytes: 5120, networkTxBytes: 500 }),
      sample(10000, { cpuUsageNs: 1e9, memoryBytes: 30, memoryLimitBytes: 0, networkRxBytes: 0, networkTxBytes: 1000 }),
    ];
    const x = toSeries(s);
    expect(x.t).toEqual([0, 5, 10]);
    expect(x.cpuCores).toEqual([null, 0.5, null]);
    expect(x.memory).toEqual([10, 20, 30]);
    expect(x.memoryLimit).toEqual([100, 100, null]);
    expect(x.rx).toEqual([null, 1024, null]);
    expect(x.tx).toEqual([null, 100, 100]);
    expect(latest(x.cpuCores)).toBe(0.5);
    expect(latest([null, null])).toBeNull();
  });
});

describe('formatting', () => {
  it('says rates and cores', () => {
    expect(formatRate(1536)).toBe('1.5 KiB/s');
    expect(formatRate(12)).toBe('12 B/s');
    expect(formatRate(null)).toBe('—');
    expect(formatCores(0.25)).toBe('0.25 cores (25%)');
    expect(formatCores(null)).toBe('—');
  });
});

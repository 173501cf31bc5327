import { describe, expect, it } from 'vitest';
import { cpuCores, formatBytes, parseServerSamples } from './prometheus';

describe('parseServerSamples', () => {
  it('reads cpu and memory per namespace/name and skips the rest', () => {
    const text = [
      '# TYPE catalyst_gameserver_memory_bytes gauge',
      'catalyst_gameserver_memory_bytes{namespace="default",name="web",node="n1"} 1048576',
      'catalyst_gameserver_memory_limit_bytes{namespace="default",name="web",node="n1"} 67108864',
      'catalyst_gameserver_cpu_seconds_total{namespace="default",name="web",node="n1"} 12.5',
      'catalyst_gameserver_cpu_seconds_total{namespace="other",name="x\\"y",node="n1"} 1',
      'catalyst_requests_total{kind="GameServer"} 5',
      'catalyst_gameserver_pids{namespace="default",name="web",node="n1"} 3',
      'catalyst_gameserver_memory_bytes{namespace="default",node="n1"} 7',
    ].join('\n');
    const m = parseServerSamples(text);
    expect(m.get('default/web')).toEqual({ memoryBytes: 1048576, memoryLimitBytes: 67108864, cpuSeconds: 12.5 });
    expect(m.get('other/x"y')).toEqual({ cpuSeconds: 1 });
    expect(m.size).toBe(2);
  });
});

describe('cpuCores', () => {
  it('is the rate of the counter, and nothing across a reset', () => {
    expect(cpuCores(10, 25, 15)).toBe(1);
    expect(cpuCores(10, 5, 15)).toBeUndefined();
    expect(cpuCores(undefined, 5, 15)).toBeUndefined();
  });
});

describe('formatBytes', () => {
  it('uses binary units', () => {
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(64 * 1024 * 1024)).toBe('64.0 MiB');
    expect(formatBytes(undefined)).toBe('—');
  });
});

import { describe, expect, it } from 'vitest';
import { countByNode, groupsOf4, readiness, resourceRows, type Node } from './nodes';

const node: Node = {
  metadata: { name: 'n1' },
  status: {
    state: 'Ready',
    conditions: [{ type: 'Ready', status: 'False', reason: 'HeartbeatMissed' }],
    capacity: { cpu: '4', memory: '8Gi', disk: '100Gi', pids: 4096 },
    allocatable: { cpu: 4, memory: '7Gi', disk: '90Gi' },
    allocated: { cpu: '1500m', memory: '3584Mi' },
  },
};

describe('nodes', () => {
  it('reads readiness from the Ready condition first', () => {
    expect(readiness(node)).toBe('NotReady');
    expect(readiness({ metadata: { name: 'x' }, status: { state: 'Ready' } })).toBe('Ready');
    expect(readiness({ metadata: { name: 'x' } })).toBe('Unknown');
  });
  it('tabulates capacity, allocatable and allocated', () => {
    const rows = resourceRows(node);
    expect(rows[0]).toEqual({ resource: 'cpu', capacity: '4', allocatable: '4', allocated: '1.5', used: 38 });
    expect(rows[1]).toEqual({ resource: 'memory', capacity: '8 GiB', allocatable: '7 GiB', allocated: '3.5 GiB', used: 50 });
    expect(rows[2].allocated).toBe('—');
    expect(rows[2].used).toBeUndefined();
    expect(rows[3]).toEqual({ resource: 'pids', capacity: '4096', allocatable: '—', allocated: '—', used: undefined });
  });
  it('counts servers per node', () => {
    const gs = [
      { metadata: { name: 'a' }, status: { nodeName: 'n1' } },
      { metadata: { name: 'b' }, status: { nodeName: 'n1' } },
      { metadata: { name: 'c' }, status: { nodeName: 'n2' } },
      { metadata: { name: 'd' } },
    ];
    const m = countByNode(gs);
    expect(m.get('n1')).toBe(2);
    expect(m.get('n2')).toBe(1);
    expect(m.size).toBe(2);
  });
  it('groups a secret by four', () => {
    expect(groupsOf4('JBSWY3DPEHPK3PXPAB')).toBe('JBSW Y3DP EHPK 3PXP AB');
    expect(groupsOf4('')).toBe('');
  });
});

// Node status for people (pure): readiness, the resource table, servers per node.

import type { Condition, KObject } from '../api/types';
import { formatBinary, formatCores, parseQuantity, percent } from './quantity';

export interface NodeResources {
  cpu?: string | number | null;
  memory?: string | number | null;
  disk?: string | number | null;
  pids?: number | null;
}

export interface Node extends KObject {
  spec?: { unschedulable?: boolean; address?: string | null; [k: string]: unknown };
  status?: {
    state?: string;
    conditions?: Condition[];
    lastHeartbeatTime?: string | null;
    addresses?: string[];
    capacity?: NodeResources;
    allocatable?: NodeResources;
    allocated?: NodeResources;
    versions?: Record<string, string>;
    [k: string]: unknown;
  };
}

/** Ready / NotReady / Unknown: the Ready condition, else `status.state`. */
export function readiness(n: Node): 'Ready' | 'NotReady' | 'Unknown' {
  const c = n.status?.conditions?.find((x) => x.type === 'Ready');
  if (c) return c.status === 'True' ? 'Ready' : c.status === 'False' ? 'NotReady' : 'Unknown';
  const s = n.status?.state;
  return s === 'Ready' || s === 'NotReady' ? s : 'Unknown';
}

export interface ResourceRow {
  resource: 'cpu' | 'memory' | 'disk' | 'pids';
  capacity: string;
  allocatable: string;
  allocated: string;
  /** allocated as a percentage of allocatable */
  used?: number;
}

/** One row per resource: capacity, allocatable, allocated (formatted) and how full it is. */
export function resourceRows(n: Node): ResourceRow[] {
  const s = n.status ?? {};
  const kinds = ['cpu', 'memory', 'disk', 'pids'] as const;
  return kinds.map((resource) => {
    const read = (r?: NodeResources) => (resource === 'pids' ? (r?.pids ?? undefined) : parseQuantity(r?.[resource]));
    const fmt = (v: number | undefined) =>
      v === undefined ? '—' : resource === 'cpu' ? formatCores(v) : resource === 'pids' ? String(v) : formatBinary(v);
    const alloc = read(s.allocatable);
    const used = read(s.allocated);
    return {
      resource,
      capacity: fmt(read(s.capacity)),
      allocatable: fmt(alloc),
      allocated: fmt(used),
      used: percent(used, alloc),
    };
  });
}

/** How many GameServers each node holds (by `status.nodeName`). */
export function countByNode(servers: Iterable<KObject>): Map<string, number> {
  const out = new Map<string, number>();
  for (const g of servers) {
    const n = (g.status as { nodeName?: string } | undefined)?.nodeName;
    if (n) out.set(n, (out.get(n) ?? 0) + 1);
  }
  return out;
}

/** "ABCD EFGH IJKL …": a secret in groups of four, easier to type. */
export function groupsOf4(secret: string): string {
  return (secret.replace(/\s+/g, '').match(/.{1,4}/g) ?? []).join(' ');
}

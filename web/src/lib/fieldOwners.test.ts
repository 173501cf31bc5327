import { describe, expect, it } from 'vitest';

import { webServer } from './fixtures/gameserver';
import { changedBy, latestEntry, ownedPaths, ownersOf, ownershipPath } from './fieldOwners';

describe('ownedPaths', () => {
  it('lists the leaves of fieldsV1 as dotted paths', () => {
    const [ctl, sched] = webServer().metadata.managedFields!;
    expect(ownedPaths(ctl)).toEqual([
      'metadata.labels.game',
      'spec.image',
      'spec.ports',
      'spec.resources.cpu',
      'spec.resources.memory',
      'spec.resources.pids',
      'spec.startup',
      'spec.variables.MOTD',
    ]);
    expect(ownedPaths(sched)).toEqual(['spec.nodeName']);
    expect(ownedPaths({})).toEqual([]);
    // keys that are not f: (Kubernetes' `.`, `k:`) are not fields here
    expect(ownedPaths({ fieldsV1: { 'f:metadata': { 'f:finalizers': { '.': {} } } } })).toEqual(['metadata.finalizers']);
  });
});

describe('ownersOf', () => {
  const gs = webServer();
  gs.metadata.managedFields!.push({
    manager: 'panel',
    operation: 'Update',
    time: '2026-11-30T21:20:00Z',
    fieldsType: 'FieldsV1',
    fieldsV1: { 'f:metadata': { 'f:annotations': { 'f:example.com/note': {} } }, 'f:spec': { 'f:variables': { 'f:MOTD': {} } } },
  });

  it('names the managers of a field, of its parent, and (if asked) of fields under it', () => {
    expect(ownersOf(gs, 'spec.variables.MOTD')).toEqual(['catalystctl', 'panel']);
    expect(ownersOf(gs, 'spec.variables[MOTD]')).toEqual(['catalystctl', 'panel']);
    expect(ownersOf(gs, 'spec.ports[0].containerPort')).toEqual(['catalystctl']);
    expect(ownersOf(gs, 'spec.nodeName')).toEqual(['scheduler']);
    expect(ownersOf(gs, 'spec.variables')).toEqual([]);
    expect(ownersOf(gs, 'spec.variables', true)).toEqual(['catalystctl', 'panel']);
    expect(ownersOf(gs, 'metadata.annotations.example.com/note')).toEqual(['panel']);
    expect(ownersOf(gs, 'spec.variablesX')).toEqual([]);
    expect(ownersOf(undefined, 'spec')).toEqual([]);
  });

  it('reads paths as ownership sees them', () => {
    expect(ownershipPath('spec.ports[1].containerPort')).toBe('spec.ports');
    expect(ownershipPath('spec.variables[MAX_PLAYERS]')).toBe('spec.variables.MAX_PLAYERS');
  });

  it('tells who wrote last and who changed given fields', () => {
    expect(latestEntry(gs)?.manager).toBe('panel');
    expect(changedBy(gs, ['spec.image'])).toEqual(['catalystctl']);
    expect(changedBy(gs, ['spec.variables'])).toEqual(['catalystctl', 'panel']);
    expect(changedBy(gs, ['spec.unowned'])).toEqual(['panel']);
    expect(changedBy({ metadata: { name: 'x' } }, ['spec.a'])).toEqual([]);
  });
});

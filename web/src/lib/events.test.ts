import { describe, expect, it } from 'vitest';
import type { KObject } from '../api/types';
import { ago, eventsFor, isAbout } from './events';

const gs: KObject = { kind: 'GameServer', metadata: { name: 'web', namespace: 'default', uid: 'u1' } };

function ev(name: string, spec: Record<string, unknown>, ns = 'default'): KObject {
  return { kind: 'Event', metadata: { name, namespace: ns, uid: `e-${name}` }, spec };
}

describe('eventsFor', () => {
  const events = [
    ev('a', { involvedObject: { kind: 'GameServer', name: 'web', namespace: 'default', uid: 'u1' }, reason: 'Scheduled', message: 'on n1', type: 'Normal', count: 1, lastTimestamp: '2026-01-01T00:00:00Z' }),
    ev('b', { involvedObject: { kind: 'GameServer', name: 'web', uid: 'u1' }, reason: 'Crashed', message: 'exit 1', type: 'Warning', count: 3, lastTimestamp: '2026-01-01T00:05:00Z' }),
    // an older server of the same name
    ev('c', { involvedObject: { kind: 'GameServer', name: 'web', uid: 'old' }, reason: 'Started', lastTimestamp: '2026-01-01T00:06:00Z' }),
    // another kind, another name
    ev('d', { involvedObject: { kind: 'Backup', name: 'web' }, reason: 'Done' }),
    ev('e', { involvedObject: { kind: 'GameServer', name: 'web2', uid: 'u2' }, reason: 'Started' }),
    // no uid on the reference: by name
    ev('f', { involvedObject: { kind: 'GameServer', name: 'web' }, reason: 'Pulled', firstTimestamp: '2026-01-01T00:01:00Z' }),
  ];
  it('keeps the server’s own events, newest first', () => {
    const out = eventsFor(events, gs);
    expect(out.map((e) => e.reason)).toEqual(['Crashed', 'Pulled', 'Scheduled']);
    expect(out[0]).toMatchObject({ type: 'Warning', message: 'exit 1', count: 3, lastTimestamp: '2026-01-01T00:05:00Z' });
    expect(out[1]).toMatchObject({ type: 'Normal', count: 1, message: '' });
  });
  it('reads top-level fields too and checks the namespace', () => {
    const top = { kind: 'Event', metadata: { name: 'x', namespace: 'default' }, involvedObject: { kind: 'GameServer', name: 'web' }, reason: 'R' } as KObject;
    expect(isAbout(top, gs)).toBe(true);
    const elsewhere = ev('y', { involvedObject: { kind: 'GameServer', name: 'web', namespace: 'other' } });
    expect(isAbout(elsewhere, gs)).toBe(false);
    expect(isAbout({ metadata: { name: 'z' } }, gs)).toBe(false);
  });
});

describe('ago', () => {
  it('says how long ago', () => {
    const now = Date.parse('2026-01-01T01:00:00Z');
    expect(ago('2026-01-01T00:59:50Z', now)).toBe('10 s ago');
    expect(ago('2026-01-01T00:30:00Z', now)).toBe('30 min ago');
    expect(ago('2025-12-31T22:00:00Z', now)).toBe('3 h ago');
    expect(ago('2025-12-29T01:00:00Z', now)).toBe('3 d ago');
    expect(ago(undefined, now)).toBe('—');
    expect(ago('garbage', now)).toBe('garbage');
  });
});

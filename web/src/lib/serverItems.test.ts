import { describe, expect, it } from 'vitest';

import { byName, ofServer, type ServerItem } from './serverItems';

const item = (name: string, gameServer?: string | null): ServerItem => ({
  apiVersion: 'catalyst.gg/v1alpha1',
  kind: 'Backup',
  metadata: { name },
  spec: gameServer === undefined ? undefined : { gameServer },
});

describe('ofServer', () => {
  it('keeps only the server own items, in order', () => {
    const items = [item('b', 'web'), item('a', 'db'), item('c', 'web'), item('d'), item('e', null)];
    expect(ofServer(items, 'web').map((x) => x.metadata.name)).toEqual(['b', 'c']);
    expect(ofServer(items, 'none')).toEqual([]);
  });
});

describe('byName', () => {
  it('sorts a copy by name', () => {
    const items = [item('c'), item('a'), item('b')];
    expect(byName(items).map((x) => x.metadata.name)).toEqual(['a', 'b', 'c']);
    expect(items.map((x) => x.metadata.name)).toEqual(['c', 'a', 'b']);
  });
});

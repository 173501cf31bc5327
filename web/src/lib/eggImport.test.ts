import { describe, expect, it } from 'vitest';

import { imageMapLines } from './eggImport';

describe('image map lines', () => {
  it('reads FROM=TO lines, skipping blanks and comments', () => {
    expect(imageMapLines('ghcr.io/pterodactyl/yolks:=mirror.local/yolks:\n\n# note\n a=oci-archive:/srv/x.tar ')).toEqual({
      entries: ['ghcr.io/pterodactyl/yolks:=mirror.local/yolks:', 'a=oci-archive:/srv/x.tar'],
    });
    expect(imageMapLines('')).toEqual({ entries: [] });
  });
  it('reports a line without FROM', () => {
    expect(imageMapLines('=x').error).toMatch(/FROM=TO/);
    expect(imageMapLines('nothing').error).toMatch(/FROM=TO/);
  });
});

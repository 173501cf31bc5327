import { describe, expect, it } from 'vitest';

import { archiveName, decodeText, isArchive, languageFor, notEditable, octalMode, parseMode, sortEntries, symbolicMode, type FileEntry } from './files';

const e = (name: string, kind: FileEntry['kind'], size = 0, modified = '2026-01-01T00:00:00Z'): FileEntry => ({
  name,
  path: `/${name}`,
  kind,
  size,
  mode: 0o644,
  modified,
});

describe('files', () => {
  it('sorts directories first, then by the key', () => {
    const items = [e('b.txt', 'file', 5), e('z', 'directory'), e('a.txt', 'file', 9), e('c', 'directory')];
    expect(sortEntries(items).map((x) => x.name)).toEqual(['c', 'z', 'a.txt', 'b.txt']);
    expect(sortEntries(items, 'size', true).map((x) => x.name)).toEqual(['z', 'c', 'a.txt', 'b.txt']);
    expect(sortEntries(items, 'size').map((x) => x.name)).toEqual(['c', 'z', 'b.txt', 'a.txt']);
    const t = [e('old', 'file', 1, '2020-01-01T00:00:00Z'), e('new', 'file', 1, '2026-01-01T00:00:00Z')];
    expect(sortEntries(t, 'modified').map((x) => x.name)).toEqual(['old', 'new']);
  });
  it('shows and parses modes', () => {
    expect(octalMode(0o644)).toBe('644');
    expect(octalMode(0o7)).toBe('007');
    expect(octalMode(0o4755)).toBe('4755');
    expect(symbolicMode(0o754)).toBe('rwxr-xr--');
    expect(parseMode('755')).toEqual({ mode: '755' });
    expect(parseMode('0644')).toEqual({ mode: '644' });
    expect(parseMode('999').error).toBeDefined();
    expect(parseMode('rw').error).toBeDefined();
  });
  it('picks editor languages by name', () => {
    expect(languageFor('/config/server.yml')).toBe('yaml');
    expect(languageFor('server.properties')).toBe('ini');
    expect(languageFor('/a/ops.json')).toBe('json');
    expect(languageFor('start.sh')).toBe('shell');
    expect(languageFor('pom.xml')).toBe('xml');
    expect(languageFor('README')).toBe('plaintext');
    expect(languageFor('.env')).toBe('ini');
    expect(languageFor('/www/index.html')).toBe('html');
    expect(languageFor('plugin.js')).toBe('plaintext');
  });
  it('refuses binary and huge files', () => {
    expect(decodeText(new TextEncoder().encode('motd=héllo\n'))).toBe('motd=héllo\n');
    expect(decodeText(new Uint8Array([104, 0, 105]))).toBeUndefined();
    expect(decodeText(new Uint8Array([0xff, 0xfe, 0x41]))).toBeUndefined();
    expect(notEditable(e('a.txt', 'file', 10))).toBeUndefined();
    expect(notEditable(e('big.log', 'file', 50 * 1024 * 1024))).toMatch(/too big/);
    expect(notEditable(e('w.zip', 'file', 10))).toMatch(/archive/);
    expect(notEditable(e('d', 'directory'))).toBeDefined();
  });
  it('knows archives and names new ones', () => {
    expect(isArchive('/a/world.tar.gz')).toBe(true);
    expect(isArchive('x.tgz')).toBe(true);
    expect(isArchive('x.ZIP')).toBe(true);
    expect(isArchive('x.gz')).toBe(false);
    expect(archiveName(['world'], 'tar.gz')).toBe('world.tar.gz');
    expect(archiveName(['a', 'b'], 'zip', new Date('2026-11-30T21:05:09Z'))).toBe('archive-20261130-210509.zip');
  });
});

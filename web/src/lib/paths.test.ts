import { describe, expect, it } from 'vitest';

import { badName, basename, extension, isWithin, join, normalize, parent, segments } from './paths';

describe('paths', () => {
  it('normalizes slashes, dots and parents, never above the root', () => {
    expect(normalize('')).toBe('/');
    expect(normalize('/')).toBe('/');
    expect(normalize('//a//b/')).toBe('/a/b');
    expect(normalize('a/./b/../c')).toBe('/a/c');
    expect(normalize('/../../etc/passwd')).toBe('/etc/passwd');
    expect(normalize('a\\b')).toBe('/a/b');
    expect(normalize('/a/b/..')).toBe('/a');
  });
  it('joins relative and absolute parts', () => {
    expect(join('/', 'server.properties')).toBe('/server.properties');
    expect(join('/plugins/', 'x.jar')).toBe('/plugins/x.jar');
    expect(join('/plugins', '../world')).toBe('/world');
    expect(join('/plugins', '/abs')).toBe('/abs');
    expect(join('/a', '..', '..', 'b')).toBe('/b');
    expect(join('/a', 'b//c/')).toBe('/a/b/c');
  });
  it('takes parents and base names', () => {
    expect(parent('/a/b/c')).toBe('/a/b');
    expect(parent('/a')).toBe('/');
    expect(parent('/')).toBe('/');
    expect(parent('/a/b/')).toBe('/a');
    expect(basename('/a/b.txt')).toBe('b.txt');
    expect(basename('/a/b/')).toBe('b');
    expect(basename('/')).toBe('');
  });
  it('finds extensions, double ones too', () => {
    expect(extension('/x/world.tar.gz')).toBe('tar.gz');
    expect(extension('a.ZIP')).toBe('zip');
    expect(extension('.bashrc')).toBe('');
    expect(extension('Makefile')).toBe('');
    expect(extension('a.b.yml')).toBe('yml');
  });
  it('splits a path into a breadcrumb', () => {
    expect(segments('/')).toEqual([{ name: '/', path: '/' }]);
    expect(segments('//a/b/')).toEqual([
      { name: '/', path: '/' },
      { name: 'a', path: '/a' },
      { name: 'b', path: '/a/b' },
    ]);
  });
  it('tells what is within a directory', () => {
    expect(isWithin('/a/b', '/a')).toBe(true);
    expect(isWithin('/ab', '/a')).toBe(false);
    expect(isWithin('/a', '/a/')).toBe(true);
    expect(isWithin('/x', '/')).toBe(true);
  });
  it('refuses names that are not single names', () => {
    expect(badName('ok.txt')).toBeUndefined();
    expect(badName('')).toBeDefined();
    expect(badName('..')).toBeDefined();
    expect(badName('a/b')).toBeDefined();
  });
});

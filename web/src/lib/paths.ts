// Paths in a GameServer's data directory, as the file API takes them: absolute from the data
// directory (`/` is its root), `/`-separated. Every path the panel sends goes through
// `normalize`/`join`, never through string concatenation alone.

/** The cleaned path: leading `/`, no empty or `.` segments, `..` resolved (never above `/`),
 * no trailing `/` (but for the root itself). */
export function normalize(p: string): string {
  const out: string[] = [];
  for (const seg of p.replace(/\\/g, '/').split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') out.pop();
    else out.push(seg);
  }
  return `/${out.join('/')}`;
}

/** `rel` resolved against the directory `dir` (an absolute `rel` starts again at the root). */
export function join(dir: string, ...rels: string[]): string {
  let p = normalize(dir);
  for (const rel of rels) {
    p = rel.startsWith('/') ? normalize(rel) : normalize(`${p}/${rel}`);
  }
  return p;
}

/** The directory holding `p` (`/` for `/` itself). */
export function parent(p: string): string {
  const n = normalize(p);
  const i = n.lastIndexOf('/');
  return i <= 0 ? '/' : n.slice(0, i);
}

/** The last name of `p` (empty for `/`). */
export function basename(p: string): string {
  const n = normalize(p);
  return n.slice(n.lastIndexOf('/') + 1);
}

/** The extension of a name, lower case, without the dot (`tar.gz` for a double one; empty when none). */
export function extension(name: string): string {
  const b = basename(name).toLowerCase();
  for (const double of ['tar.gz', 'tar.zst', 'tar.bz2', 'tar.xz']) if (b.endsWith(`.${double}`) && b !== `.${double}`) return double;
  const i = b.lastIndexOf('.');
  return i <= 0 ? '' : b.slice(i + 1);
}

/** The breadcrumb of `p`: the root and each directory down to `p`, with their paths. */
export function segments(p: string): { name: string; path: string }[] {
  const n = normalize(p);
  const out = [{ name: '/', path: '/' }];
  let at = '';
  for (const seg of n.split('/').filter(Boolean)) {
    at += `/${seg}`;
    out.push({ name: seg, path: at });
  }
  return out;
}

/** Whether `p` is `dir` or below it. */
export function isWithin(p: string, dir: string): boolean {
  const a = normalize(p);
  const d = normalize(dir);
  return d === '/' || a === d || a.startsWith(`${d}/`);
}

/** Why `name` cannot be a single file name (empty, `.`/`..`, a `/` or a NUL in it), or undefined. */
export function badName(name: string): string | undefined {
  if (!name.trim()) return 'a name is needed';
  if (name === '.' || name === '..') return `"${name}" is not a file name`;
  if (name.includes('/')) return 'a name has no "/" (use Move to put it elsewhere)';
  if (name.includes('\0')) return 'a name has no NUL character';
  return undefined;
}

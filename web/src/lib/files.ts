// Pure helpers of the file manager: the API's entry shape, sorting, modes, which editor
// language a file gets, whether a file may be opened as text, archives.

import { basename, extension } from './paths';

/** One entry of a listing (nodelet `Entry`). `mode` is the permission bits as a number. */
export interface FileEntry {
  name: string;
  path: string;
  kind: 'file' | 'directory' | 'symlink' | 'other';
  size: number;
  mode: number;
  modified: string;
  linkTarget?: string;
  uid?: number;
  gid?: number;
}

/** A page of a directory (`GET …/files?path=DIR`). */
export interface Listing {
  path: string;
  items: FileEntry[];
  next?: string;
}

export type SortKey = 'name' | 'size' | 'modified';

/** Directories first, then by `key` (name breaks ties); `desc` reverses within each group. */
export function sortEntries(items: FileEntry[], key: SortKey = 'name', desc = false): FileEntry[] {
  const byName = (a: FileEntry, b: FileEntry) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  const cmp = (a: FileEntry, b: FileEntry) => {
    let c = 0;
    if (key === 'size') c = a.size - b.size;
    else if (key === 'modified') c = Date.parse(a.modified) - Date.parse(b.modified);
    if (c === 0) c = byName(a, b);
    return desc ? -c : c;
  };
  return [...items].sort((a, b) => {
    const da = a.kind === 'directory' ? 0 : 1;
    const db = b.kind === 'directory' ? 0 : 1;
    return da - db || cmp(a, b);
  });
}

/** `0o644` → `644` (four digits when setuid/setgid/sticky are set). */
export function octalMode(mode: number): string {
  const s = (mode & 0o7777).toString(8);
  return s.length < 3 ? s.padStart(3, '0') : s;
}

/** `0o755` → `rwxr-xr-x`. */
export function symbolicMode(mode: number): string {
  const rwx = (bits: number) => `${bits & 4 ? 'r' : '-'}${bits & 2 ? 'w' : '-'}${bits & 1 ? 'x' : '-'}`;
  return rwx((mode >> 6) & 7) + rwx((mode >> 3) & 7) + rwx(mode & 7);
}

/** Permission bits typed by a user (`644`, `0755`): the normalised octal string, or an error. */
export function parseMode(text: string): { mode?: string; error?: string } {
  const t = text.trim().replace(/^0o/, '');
  if (!/^[0-7]{3,4}$/.test(t)) return { error: 'three or four octal digits, like 644 or 0755' };
  return { mode: t.length === 4 ? t.replace(/^0/, '') || '0' : t };
}

/** Files bigger than this are not opened in the editor (downloaded instead). */
export const EDITOR_MAX_BYTES = 4 * 1024 * 1024;

/** Files at most this big are downloaded through fetch (a Blob in memory); bigger ones by a link. */
export const BLOB_DOWNLOAD_MAX_BYTES = 64 * 1024 * 1024;

/** Why a file cannot be opened in the editor by what the listing says, or undefined. */
export function notEditable(e: Pick<FileEntry, 'kind' | 'size' | 'name'>): string | undefined {
  if (e.kind !== 'file') return `${e.name} is not a regular file`;
  if (e.size > EDITOR_MAX_BYTES) return `${e.name} is too big to edit here (over ${EDITOR_MAX_BYTES / 1024 / 1024} MiB): download it instead`;
  if (isArchive(e.name)) return `${e.name} is an archive: extract it or download it`;
  return undefined;
}

/** The text of a file's bytes, or undefined when they look binary (a NUL byte, or not UTF-8). */
export function decodeText(bytes: Uint8Array): string | undefined {
  if (bytes.includes(0)) return undefined;
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return undefined;
  }
}

const LANGUAGES: Record<string, string> = {
  yml: 'yaml',
  yaml: 'yaml',
  json: 'json',
  json5: 'json',
  mcmeta: 'json',
  properties: 'ini',
  ini: 'ini',
  cfg: 'ini',
  conf: 'ini',
  toml: 'ini',
  env: 'ini',
  xml: 'xml',
  sh: 'shell',
  bash: 'shell',
  // js/ts stay plain text: their language service needs TypeScript's worker, not bundled
  lua: 'lua',
  py: 'python',
  html: 'html',
  htm: 'html',
  css: 'css',
  md: 'markdown',
  java: 'java',
  sql: 'sql',
  bat: 'bat',
  cmd: 'bat',
  ps1: 'powershell',
  dockerfile: 'dockerfile',
  rb: 'ruby',
  go: 'go',
  rs: 'rust',
  php: 'php',
};

/** The Monaco language of a file by its name (`plaintext` when none fits). */
export function languageFor(path: string): string {
  const name = basename(path).toLowerCase();
  if (name === 'dockerfile') return 'dockerfile';
  if (name === '.env' || name.endsWith('.env')) return 'ini';
  return LANGUAGES[extension(name)] ?? 'plaintext';
}

export const ARCHIVE_FORMATS = ['tar.gz', 'tar.zst', 'zip', 'tar'] as const;
export type ArchiveFormat = (typeof ARCHIVE_FORMATS)[number];

/** Whether the file manager can extract `name` (by its name). */
export function isArchive(name: string): boolean {
  const b = basename(name).toLowerCase();
  return /\.(tar|tar\.gz|tgz|tar\.zst|tzst|zip)$/.test(b);
}

/** The name of an archive of `names` in format `f` (`world.tar.gz`, or `archive-<stamp>.zip` for several). */
export function archiveName(names: string[], f: ArchiveFormat, now = new Date()): string {
  const stamp = now.toISOString().slice(0, 19).replace(/[-:]/g, '').replace('T', '-');
  const base = names.length === 1 ? names[0].replace(/^\.+/, '') || 'archive' : `archive-${stamp}`;
  return `${base}.${f}`;
}

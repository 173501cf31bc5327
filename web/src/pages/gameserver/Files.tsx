// A GameServer's files: browse (fm-breadcrumb, pages, sort), edit text files in Monaco, upload
// (button and drag-and-drop, with progress), download, new file/folder, rename/move, chmod,
// delete, compress and extract. Every path is normalised (lib/paths) and relative to the
// server's data directory; every control is shown only when the API says the user may use it.

import { useMemo, useRef, useState, type DragEvent } from 'react';
import { useInfiniteQuery, useQueryClient } from '@tanstack/react-query';
import { useLocation, useSearch } from 'wouter';

import { api, ApiError, resourcePath, send, withQuery } from '../../api/client';
import { useCan } from '../../api/hooks';
import type { GameServer } from '../../api/types';
import { ErrorAlert, StatusNotice, DeniedSection } from '../../components/AdminKit';
import {
  ARCHIVE_FORMATS,
  archiveName,
  isArchive,
  notEditable,
  octalMode,
  parseMode,
  sortEntries,
  symbolicMode,
  type ArchiveFormat,
  type FileEntry,
  type Listing,
  type SortKey,
} from '../../lib/files';
import { formatBytes } from '../../lib/prometheus';
import { badName, basename, join, normalize, parent, segments } from '../../lib/paths';
import { Dialog, HintedField, messageOf } from './files/Dialog';
import { download } from './files/download';
import { Editor } from './files/Editor';
import { uploadWithProgress } from './files/upload';
import './files.css';

const PAGE = 1000;

type Action =
  | { kind: 'mkdir' }
  | { kind: 'newfile' }
  | { kind: 'rename'; entry: FileEntry }
  | { kind: 'copy'; entry: FileEntry }
  | { kind: 'pull' }
  | { kind: 'chmod'; entry: FileEntry }
  | { kind: 'delete'; entries: FileEntry[] }
  | { kind: 'compress'; entries: FileEntry[] }
  | { kind: 'extract'; entry: FileEntry };

interface Upload {
  id: number;
  name: string;
  loaded: number;
  total: number;
  state: 'waiting' | 'sending' | 'done' | 'failed';
  message?: string;
}

/** `?path=DIR&file=F` in the URL, so a folder or an open file can be linked and reloaded. */
function usePlace() {
  const search = useSearch();
  const [location, navigate] = useLocation();
  const params = new URLSearchParams(search);
  const dir = normalize(params.get('path') ?? '/');
  const file = params.get('file') ? normalize(params.get('file') as string) : undefined;
  const go = (next: { path?: string; file?: string }) => {
    const q = new URLSearchParams(search);
    q.delete('file');
    if (next.path !== undefined) {
      if (next.path === '/') q.delete('path');
      else q.set('path', next.path);
    }
    if (next.file) q.set('file', next.file);
    const s = q.toString();
    navigate(s ? `${location}?${s}` : location);
  };
  return { dir, file, go };
}

export default function Files({ gs }: { gs: GameServer }) {
  const ns = gs.metadata.namespace ?? 'default';
  const name = gs.metadata.name;
  const filesPath = resourcePath('gameservers', ns, name, 'files');
  const canList = useCan('get', 'gameservers/files', ns, name);
  const canRead = useCan('get', 'gameservers/filecontents', ns, name);
  const canUpdate = useCan('update', 'gameservers/files', ns, name);
  const canCreate = useCan('create', 'gameservers/files', ns, name);
  const canPatch = useCan('patch', 'gameservers/files', ns, name);
  const canDelete = useCan('delete', 'gameservers/files', ns, name);
  const { dir, file, go } = usePlace();
  const qc = useQueryClient();
  const listKey = ['files', ns, name, dir];

  const listing = useInfiniteQuery({
    queryKey: listKey,
    enabled: canList === true,
    initialPageParam: undefined as string | undefined,
    queryFn: ({ pageParam, signal }) =>
      api<Listing>(filesPath, { query: { path: dir, after: pageParam, limit: PAGE }, signal }),
    getNextPageParam: (last) => last.next,
    retry: (n, e) => !(e instanceof ApiError && e.code < 500) && n < 2,
  });
  const refresh = () => qc.invalidateQueries({ queryKey: ['files', ns, name] });

  const [sort, setSort] = useState<{ key: SortKey; desc: boolean }>({ key: 'name', desc: false });
  const entries = useMemo(
    () => sortEntries(listing.data?.pages.flatMap((p) => p.items) ?? [], sort.key, sort.desc),
    [listing.data, sort],
  );
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const chosen = entries.filter((e) => selected.has(e.path));
  const [action, setAction] = useState<Action | null>(null);
  const [actionError, setActionError] = useState('');
  const [busy, setBusy] = useState(false);
  const [pageError, setPageError] = useState('');
  const [notice, setNotice] = useState('');
  const [uploads, setUploads] = useState<Upload[]>([]);
  const [dragging, setDragging] = useState(false);
  const uploadId = useRef(0);
  const canUpload = canUpdate === true;

  const openDir = (p: string) => {
    setSelected(new Set());
    setPageError('');
    go({ path: p });
  };

  const openEntry = (e: FileEntry) => {
    if (e.kind === 'directory') return openDir(e.path);
    const why = notEditable(e);
    if (why) {
      setPageError(why);
      return;
    }
    setPageError('');
    go({ path: dir, file: e.path });
  };

  /** Runs an action of a dialog: closes it when done, keeps it open with the API's message else. */
  const run = async (f: () => Promise<string | void>) => {
    setBusy(true);
    setActionError('');
    try {
      const done = await f();
      setAction(null);
      setNotice(done ?? '');
      setSelected(new Set());
    } catch (e) {
      setActionError(messageOf(e));
    } finally {
      setBusy(false);
      void refresh();
    }
  };

  const uploadFiles = async (list: FileList | File[]) => {
    const files = Array.from(list);
    if (!files.length) return;
    const base = uploadId.current;
    uploadId.current += files.length;
    setUploads((u) => [
      ...u.filter((x) => x.state === 'sending' || x.state === 'waiting'),
      ...files.map((f, i) => ({ id: base + i, name: f.name, loaded: 0, total: f.size, state: 'waiting' as const })),
    ]);
    const patch = (id: number, p: Partial<Upload>) => setUploads((u) => u.map((x) => (x.id === id ? { ...x, ...p } : x)));
    for (const [i, f] of files.entries()) {
      const id = base + i;
      const bad = badName(f.name);
      if (bad) {
        patch(id, { state: 'failed', message: bad });
        continue;
      }
      patch(id, { state: 'sending' });
      try {
        await uploadWithProgress(withQuery(filesPath, { path: join(dir, f.name) }), f, (loaded, total) =>
          patch(id, { loaded, total }),
        );
        patch(id, { state: 'done', loaded: f.size });
      } catch (e) {
        patch(id, { state: 'failed', message: messageOf(e) });
      }
      void refresh();
    }
  };

  const onDrop = (e: DragEvent) => {
    e.preventDefault();
    setDragging(false);
    if (!canUpload || !e.dataTransfer.files.length) return;
    // a dropped folder arrives as an empty File: it is refused by name, not sent
    const folders = new Set<string>();
    for (const item of Array.from(e.dataTransfer.items ?? [])) {
      const entry = item.webkitGetAsEntry?.();
      if (entry?.isDirectory) folders.add(entry.name);
    }
    const files = Array.from(e.dataTransfer.files).filter((f) => !folders.has(f.name));
    if (folders.size)
      setPageError(
        `Folders cannot be uploaded here (${[...folders].join(', ')}): upload a .zip or .tar.gz of it and Extract it, or use SFTP.`,
      );
    void uploadFiles(files);
  };

  const downloadEntry = async (e: FileEntry) => {
    setPageError('');
    try {
      await download(resourcePath('gameservers', ns, name, 'filecontents'), { path: e.path }, e.name, e.size);
    } catch (err) {
      setPageError(`Download of ${e.name} failed: ${messageOf(err)}`);
    }
  };

  if (canList === false) {
    return <DeniedSection id="files-title" title="Files" text="You may not see this server's files." />;
  }

  if (file) {
    return (
      <Editor
        key={file}
        ns={ns}
        name={name}
        path={file}
        canWrite={canUpdate === true}
        onClose={() => go({ path: parent(file) })}
        onSaved={() => void refresh()}
      />
    );
  }

  const sortButton = (key: SortKey, label: string) => (
    <button
      type="button"
      className="fm-link"
      onClick={() => setSort((s) => ({ key, desc: s.key === key ? !s.desc : false }))}
    >
      {label}
      {sort.key === key ? (sort.desc ? ' ▼' : ' ▲') : ''}
    </button>
  );
  const ariaSort = (key: SortKey) => (sort.key === key ? (sort.desc ? 'descending' : 'ascending') : 'none');
  const allSelected = entries.length > 0 && entries.every((e) => selected.has(e.path));

  return (
    <section aria-labelledby="files-title" className="files">
      <div className="toolbar">
        <h2 id="files-title" className="files-title">
          Files
        </h2>
        <nav aria-label="Folder path" className="fm-breadcrumb">
          <ol>
            {segments(dir).map((s, i, all) => (
              <li key={s.path}>
                {i === all.length - 1 ? (
                  <span aria-current="page" className="mono">
                    {s.name}
                  </span>
                ) : (
                  <button type="button" className="fm-link mono" onClick={() => openDir(s.path)}>
                    {s.name === '/' ? 'Home /' : s.name}
                  </button>
                )}
              </li>
            ))}
          </ol>
        </nav>
        <span className="spacer" />
        <button type="button" onClick={() => void refresh()} aria-label="Refresh the listing">
          Refresh
        </button>
        {canUpdate && (
          <button type="button" onClick={() => (setActionError(''), setAction({ kind: 'newfile' }))}>
            New file
          </button>
        )}
        {canCreate && (
          <button type="button" onClick={() => (setActionError(''), setAction({ kind: 'mkdir' }))}>
            New folder
          </button>
        )}
        {canCreate && (
          <button type="button" onClick={() => (setActionError(''), setAction({ kind: 'pull' }))}>
            Download from URL
          </button>
        )}
        {canUpload && (
          <label className="button primary upload-button">
            Upload
            <input
              type="file"
              multiple
              className="sr-only"
              aria-label="Upload files"
              onChange={(e) => {
                if (e.target.files) void uploadFiles(e.target.files);
                e.target.value = '';
              }}
            />
          </label>
        )}
      </div>

      {chosen.length > 0 && (
        <div className="toolbar" role="group" aria-label="Selected files">
          <strong>{chosen.length} selected</strong>
          {canCreate && (
            <button type="button" onClick={() => (setActionError(''), setAction({ kind: 'compress', entries: chosen }))}>
              Compress
            </button>
          )}
          {canDelete && (
            <button
              type="button"
              className="danger"
              onClick={() => (setActionError(''), setAction({ kind: 'delete', entries: chosen }))}
            >
              Delete selected
            </button>
          )}
          <button type="button" onClick={() => setSelected(new Set())}>
            Clear selection
          </button>
        </div>
      )}

      <ErrorAlert error={pageError} />
      <StatusNotice text={notice} />
      {listing.error != null && (
        <div className="alert" role="alert">
          {messageOf(listing.error)}
          {dir !== '/' && (
            <>
              {' '}
              <button type="button" className="fm-link" onClick={() => openDir('/')}>
                Go to the top folder
              </button>
            </>
          )}
        </div>
      )}

      {uploads.length > 0 && (
        <ul className="fm-uploads" aria-label="Uploads">
          {uploads.map((u) => (
            <li key={u.id}>
              <span className="mono">{u.name}</span>{' '}
              {u.state === 'sending' && (
                <progress max={u.total || 1} value={u.loaded} aria-label={`Uploading ${u.name}`} />
              )}{' '}
              <span className={u.state === 'failed' ? 'error-text' : 'muted'} role={u.state === 'failed' ? 'alert' : undefined}>
                {u.state === 'waiting' && 'waiting'}
                {u.state === 'sending' && `${formatBytes(u.loaded)} of ${formatBytes(u.total)}`}
                {u.state === 'done' && 'uploaded'}
                {u.state === 'failed' && `failed: ${u.message}`}
              </span>
            </li>
          ))}
          {uploads.every((u) => u.state === 'done' || u.state === 'failed') && (
            <li>
              <button type="button" className="fm-link" onClick={() => setUploads([])}>
                Clear the list
              </button>
            </li>
          )}
        </ul>
      )}

      <div
        className={`table-wrap files-drop${dragging ? ' dragging' : ''}`}
        onDragOver={(e) => {
          if (!canUpload) return;
          e.preventDefault();
          setDragging(true);
        }}
        onDragLeave={() => setDragging(false)}
        onDrop={onDrop}
        data-testid="file-list"
      >
        {canUpload && <p className="sr-only">Drop files here to upload them into {dir}.</p>}
        <table aria-label={`Files in ${dir}`}>
          <thead>
            <tr>
              <th scope="col" className="col-check">
                <input
                  type="checkbox"
                  aria-label="Select every entry shown"
                  checked={allSelected}
                  onChange={() => setSelected(allSelected ? new Set() : new Set(entries.map((e) => e.path)))}
                />
              </th>
              <th scope="col" aria-sort={ariaSort('name')}>
                {sortButton('name', 'Name')}
              </th>
              <th scope="col" aria-sort={ariaSort('size')} className="col-size">
                {sortButton('size', 'Size')}
              </th>
              <th scope="col" aria-sort={ariaSort('modified')} className="col-modified">
                {sortButton('modified', 'Modified')}
              </th>
              <th scope="col" className="col-mode">
                Mode
              </th>
              <th scope="col">
                <span className="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {dir !== '/' && (
              <tr>
                <td className="col-check" />
                <td colSpan={5}>
                  <button type="button" className="fm-link entry-name" onClick={() => openDir(parent(dir))}>
                    <span aria-hidden="true">↩</span> .. <span className="sr-only">(parent folder)</span>
                  </button>
                </td>
              </tr>
            )}
            {entries.map((e) => (
              <tr key={e.path} aria-selected={selected.has(e.path)}>
                <td className="col-check">
                  <input
                    type="checkbox"
                    aria-label={`Select ${e.name}`}
                    checked={selected.has(e.path)}
                    onChange={() =>
                      setSelected((s) => {
                        const n = new Set(s);
                        if (n.has(e.path)) n.delete(e.path);
                        else n.add(e.path);
                        return n;
                      })
                    }
                  />
                </td>
                <td className="entry-cell">
                  {e.kind === 'directory' || (e.kind === 'file' && canRead) ? (
                    <button type="button" className="fm-link entry-name" onClick={() => openEntry(e)}>
                      <span aria-hidden="true" className="entry-icon">
                        {e.kind === 'directory' ? '📁' : '📄'}
                      </span>
                      {e.name}
                      {e.kind === 'directory' && <span className="sr-only"> (folder)</span>}
                    </button>
                  ) : (
                    <span className="entry-name">
                      <span aria-hidden="true" className="entry-icon">
                        {e.kind === 'symlink' ? '🔗' : '📄'}
                      </span>
                      {e.name}
                      {e.kind === 'symlink' && <span className="muted mono"> → {e.linkTarget}</span>}
                    </span>
                  )}
                </td>
                <td className="col-size">{e.kind === 'directory' ? '' : formatBytes(e.size)}</td>
                <td className="col-modified">
                  <time dateTime={e.modified}>{new Date(e.modified).toLocaleString()}</time>
                </td>
                <td className="col-mode mono" title={symbolicMode(e.mode)}>
                  {octalMode(e.mode)}
                </td>
                <td className="entry-actions">
                  {e.kind === 'file' && canRead && (
                    <button type="button" onClick={() => void downloadEntry(e)} aria-label={`Download ${e.name}`}>
                      Download
                    </button>
                  )}
                  {e.kind === 'file' && isArchive(e.name) && canCreate && (
                    <button
                      type="button"
                      onClick={() => (setActionError(''), setAction({ kind: 'extract', entry: e }))}
                      aria-label={`Extract ${e.name}`}
                    >
                      Extract
                    </button>
                  )}
                  {canPatch && (
                    <button
                      type="button"
                      onClick={() => (setActionError(''), setAction({ kind: 'rename', entry: e }))}
                      aria-label={`Rename or move ${e.name}`}
                    >
                      Rename
                    </button>
                  )}
                  {canCreate && e.kind !== 'other' && (
                    <button
                      type="button"
                      onClick={() => (setActionError(''), setAction({ kind: 'copy', entry: e }))}
                      aria-label={`Copy ${e.name}`}
                    >
                      Copy
                    </button>
                  )}
                  {canPatch && e.kind !== 'symlink' && (
                    <button
                      type="button"
                      onClick={() => (setActionError(''), setAction({ kind: 'chmod', entry: e }))}
                      aria-label={`Permissions of ${e.name}`}
                    >
                      Permissions
                    </button>
                  )}
                  {canDelete && (
                    <button
                      type="button"
                      className="danger"
                      onClick={() => (setActionError(''), setAction({ kind: 'delete', entries: [e] }))}
                      aria-label={`Delete ${e.name}`}
                    >
                      Delete
                    </button>
                  )}
                </td>
              </tr>
            ))}
            {listing.isSuccess && entries.length === 0 && (
              <tr>
                <td colSpan={6} className="muted">
                  This folder is empty.{canUpload ? ' Drop files here or use Upload.' : ''}
                </td>
              </tr>
            )}
            {(listing.isLoading || canList === undefined) && (
              <tr>
                <td colSpan={6} className="muted">
                  Loading…
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
      {listing.hasNextPage && (
        <div className="toolbar">
          <button type="button" onClick={() => void listing.fetchNextPage()} disabled={listing.isFetchingNextPage}>
            {listing.isFetchingNextPage ? 'Loading…' : 'Load more'}
          </button>
          <span className="muted">{entries.length} shown</span>
        </div>
      )}

      {action && (
        <ActionDialog
          action={action}
          dir={dir}
          busy={busy}
          error={actionError}
          onClose={() => setAction(null)}
          run={run}
          filesPath={filesPath}
          openFile={(p) => go({ path: dir, file: p })}
        />
      )}
    </section>
  );
}

/** The last name of a URL's path (`https://x/a/b.jar?x` → `b.jar`), or empty. */
function nameFromUrl(u: string): string {
  try {
    const n = decodeURIComponent(new URL(u).pathname.split('/').pop() ?? '');
    return badName(n) ? '' : n;
  } catch {
    return '';
  }
}

function ActionDialog({
  action,
  dir,
  busy,
  error,
  onClose,
  run,
  filesPath,
  openFile,
}: {
  action: Action;
  dir: string;
  busy: boolean;
  error: string;
  onClose: () => void;
  run: (f: () => Promise<string | void>) => Promise<void>;
  filesPath: string;
  openFile: (p: string) => void;
}) {
  const initial = (() => {
    switch (action.kind) {
      case 'rename':
        return action.entry.name;
      case 'copy':
        return `${action.entry.name.replace(/(\.[^.]*)?$/, ' copy$1')}`;
      case 'chmod':
        return octalMode(action.entry.mode);
      case 'compress':
        return archiveName(
          action.entries.map((e) => e.name),
          'tar.gz',
        );
      case 'extract':
        return dir;
      default:
        return '';
    }
  })();
  const [text, setText] = useState(initial);
  const [text2, setText2] = useState('');
  const [nameTouched, setNameTouched] = useState(false);
  const [flag, setFlag] = useState(false);
  const [format, setFormat] = useState<ArchiveFormat>('tar.gz');
  const [fieldError, setFieldError] = useState('');

  const exists = async (p: string) => {
    try {
      await api(filesPath, { query: { path: p, stat: true } });
      return true;
    } catch (e) {
      if (e instanceof ApiError && e.code === 404) return false;
      throw e;
    }
  };

  switch (action.kind) {
    case 'mkdir':
    case 'newfile': {
      const folder = action.kind === 'mkdir';
      const target = text.trim() ? join(dir, text.trim()) : '';
      return (
        <Dialog
          title={folder ? 'New folder' : 'New file'}
          onClose={onClose}
          busy={busy}
          error={error}
          submitLabel={folder ? 'Create folder' : 'Create file'}
          onSubmit={() => {
            if (!text.trim() || text.includes('\0')) return setFieldError('a name is needed');
            setFieldError('');
            return run(async () => {
              if (folder) {
                await api(filesPath, { method: 'POST', query: { path: target, op: 'mkdir' } });
                return `Folder ${target} created.`;
              }
              if (await exists(target)) throw new Error(`${target} exists already`);
              await send(filesPath, { method: 'PUT', query: { path: target }, body: '', contentType: 'application/octet-stream' });
              openFile(target);
            });
          }}
        >
          <HintedField
            id="fm-name"
            label={folder ? 'Folder name' : 'File name'}
            autoFocus
            value={text}
            onChange={setText}
            error={fieldError}
            hint={
              <>
                In {dir}; a path like <code>config/new</code> works too{target ? `: ${target}` : ''}.
              </>
            }
          />
        </Dialog>
      );
    }
    case 'rename': {
      const e = action.entry;
      const target = text.trim() ? join(parent(e.path), text.trim()) : '';
      return (
        <Dialog
          title={`Rename or move ${e.name}`}
          onClose={onClose}
          busy={busy}
          error={error}
          submitLabel="Rename"
          onSubmit={() => {
            if (!target || target === '/') return setFieldError('a new name or path is needed');
            if (target === e.path) return setFieldError('that is its name already');
            setFieldError('');
            return run(async () => {
              await api(filesPath, { method: 'PATCH', query: { path: e.path }, body: { to: target, replace: flag } });
              return `${e.path} is now ${target}.`;
            });
          }}
        >
          <HintedField
            id="fm-to"
            label="New name or path"
            autoFocus
            value={text}
            onChange={setText}
            error={fieldError}
            hint={
              <>
                Relative to {parent(e.path)} (<code>../</code> moves up, <code>/</code> starts at the top){target ? `: ${target}` : ''}.
              </>
            }
          />
          <label className="fm-check">
            <input type="checkbox" checked={flag} onChange={(ev) => setFlag(ev.target.checked)} /> Replace what is
            there already
          </label>
        </Dialog>
      );
    }
    case 'copy': {
      const e = action.entry;
      const target = text.trim() ? join(parent(e.path), text.trim()) : '';
      return (
        <Dialog
          title={`Copy ${e.name}`}
          onClose={onClose}
          busy={busy}
          error={error}
          submitLabel="Copy"
          onSubmit={() => {
            if (!target || target === '/' || target === e.path) return setFieldError('a new name or path is needed');
            setFieldError('');
            return run(async () => {
              await api(filesPath, { method: 'POST', query: { path: e.path, op: 'copy', to: target } });
              return `${e.path} copied to ${target}.`;
            });
          }}
        >
          <HintedField
            id="fm-copy"
            label="Copy to"
            autoFocus
            value={text}
            onChange={setText}
            error={fieldError}
            hint={
              <>
                Relative to {parent(e.path)}{target ? `: ${target}` : ''}. Folders are copied with their contents.
              </>
            }
          />
        </Dialog>
      );
    }
    case 'pull': {
      const url = text.trim();
      const fileName = text2.trim();
      const bad = badName(fileName);
      return (
        <Dialog
          title="Download a file from a URL"
          onClose={onClose}
          busy={busy}
          error={error}
          submitLabel="Download"
          onSubmit={() => {
            if (!/^https?:\/\//i.test(url)) return setFieldError('an http:// or https:// URL is needed');
            if (bad) return setFieldError(`Save as: ${bad}`);
            setFieldError('');
            const dest = join(dir, fileName);
            return run(async () => {
              await api(filesPath, { method: 'POST', query: { op: 'pull' }, body: { url, dest } });
              return `${dest} downloaded.`;
            });
          }}
        >
          <div className="field">
            <label htmlFor="fm-url">URL</label>
            <input
              id="fm-url"
              autoFocus
              type="url"
              value={text}
              onChange={(ev) => {
                setText(ev.target.value);
                if (!nameTouched) setText2(nameFromUrl(ev.target.value));
              }}
            />
            <span className="hint">The server's node fetches it (public addresses only, at most 10 GiB).</span>
          </div>
          <div className="field">
            <label htmlFor="fm-urlname">Save as</label>
            <input
              id="fm-urlname"
              value={text2}
              onChange={(ev) => {
                setNameTouched(true);
                setText2(ev.target.value);
              }}
              aria-invalid={!!fieldError}
            />
            <span className="hint">In {dir}.</span>
            {fieldError && <span className="error">{fieldError}</span>}
          </div>
        </Dialog>
      );
    }
    case 'chmod': {
      const e = action.entry;
      const parsed = parseMode(text);
      return (
        <Dialog
          title={`Permissions of ${e.name}`}
          onClose={onClose}
          busy={busy}
          error={error}
          submitLabel="Set permissions"
          onSubmit={() => {
            if (!parsed.mode) return setFieldError(parsed.error ?? 'bad mode');
            setFieldError('');
            return run(async () => {
              await api(filesPath, { method: 'PATCH', query: { path: e.path }, body: { mode: parsed.mode } });
              return `${e.path} is now ${parsed.mode}.`;
            });
          }}
        >
          <HintedField
            id="fm-mode"
            label="Mode (octal)"
            autoFocus
            inputMode="numeric"
            className="mono"
            value={text}
            onChange={setText}
            error={fieldError}
            hint={
              <>
                {parsed.mode ? symbolicMode(parseInt(parsed.mode, 8)) : parsed.error}. Setuid, setgid and sticky bits are never set.
              </>
            }
          />
        </Dialog>
      );
    }
    case 'delete': {
      const list = action.entries;
      const dirs = list.filter((e) => e.kind === 'directory').length;
      return (
        <Dialog
          title={list.length === 1 ? `Delete ${list[0].name}?` : `Delete ${list.length} entries?`}
          onClose={onClose}
          busy={busy}
          error={error}
          danger
          submitLabel="Delete"
          onSubmit={() =>
            run(async () => {
              const failed: string[] = [];
              for (const e of list) {
                try {
                  await api(filesPath, {
                    method: 'DELETE',
                    query: { path: e.path, recursive: e.kind === 'directory' ? true : undefined },
                  });
                } catch (err) {
                  failed.push(`${e.name}: ${messageOf(err)}`);
                }
              }
              if (failed.length) throw new Error(failed.join('; '));
              return `Deleted ${list.length === 1 ? list[0].path : `${list.length} entries`}.`;
            })
          }
        >
          <p>
            {dirs > 0 ? 'Folders are deleted with everything in them. ' : ''}This cannot be undone.
          </p>
          <ul className="mono">
            {list.slice(0, 12).map((e) => (
              <li key={e.path}>
                {e.path}
                {e.kind === 'directory' ? '/' : ''}
              </li>
            ))}
            {list.length > 12 && <li>… and {list.length - 12} more</li>}
          </ul>
        </Dialog>
      );
    }
    case 'compress': {
      const list = action.entries;
      const bad = badName(text.trim());
      return (
        <Dialog
          title={`Compress ${list.length === 1 ? list[0].name : `${list.length} entries`}`}
          onClose={onClose}
          busy={busy}
          error={error}
          submitLabel="Compress"
          onSubmit={() => {
            if (bad) return setFieldError(bad);
            setFieldError('');
            const dest = join(dir, text.trim());
            return run(async () => {
              await api(filesPath, {
                method: 'POST',
                query: { op: 'compress' },
                body: { paths: list.map((e) => e.path), dest, format },
              });
              return `Archive ${dest} written.`;
            });
          }}
        >
          <div className="field">
            <label htmlFor="fm-format">Format</label>
            <select
              id="fm-format"
              value={format}
              onChange={(ev) => {
                const f = ev.target.value as ArchiveFormat;
                setText((t) => t.replace(/\.(tar\.gz|tar\.zst|zip|tar)$/, '') + `.${f}`);
                setFormat(f);
              }}
            >
              {ARCHIVE_FORMATS.map((f) => (
                <option key={f}>{f}</option>
              ))}
            </select>
          </div>
          <HintedField
            id="fm-dest"
            label="Archive name"
            value={text}
            onChange={setText}
            error={fieldError}
            hint={
              <>
                Written into {dir}.
              </>
            }
          />
        </Dialog>
      );
    }
    case 'extract': {
      const e = action.entry;
      const to = normalize(text.trim() || dir);
      return (
        <Dialog
          title={`Extract ${e.name}`}
          onClose={onClose}
          busy={busy}
          error={error}
          submitLabel="Extract"
          onSubmit={() =>
            run(async () => {
              await api(filesPath, { method: 'POST', query: { path: e.path, op: 'extract', to } });
              return `${basename(e.path)} extracted into ${to}.`;
            })
          }
        >
          <div className="field">
            <label htmlFor="fm-into">Into folder</label>
            <input id="fm-into" autoFocus className="mono" value={text} onChange={(ev) => setText(ev.target.value)} />
            <span className="hint">
              A path from the top of the server's files: {to}. Files of the same names there are replaced; an archive
              with unsafe members (links, <code>..</code>, absolute names) is refused whole.
            </span>
          </div>
        </Dialog>
      );
    }
  }
}

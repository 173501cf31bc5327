// A text file of a server in Monaco: loaded from `…/filecontents`, saved with `PUT …/files`.
// Huge files, archives and binary files are refused with a message (download them instead).

import { useEffect, useRef, useState } from 'react';
import type * as Monaco from 'monaco-editor';

import { api, ApiError, resourcePath, send } from '../../../api/client';
import { decodeText, languageFor, notEditable, type FileEntry } from '../../../lib/files';
import { loadMonaco } from '../../../lib/monaco';
import { isDark } from '../../../components/theme';
import { messageOf } from './Dialog';

type Load =
  | { state: 'loading' }
  | { state: 'refused'; message: string }
  | { state: 'error'; message: string }
  | { state: 'ready'; text: string; entry: FileEntry };

export function Editor({
  ns,
  name,
  path,
  canWrite,
  onClose,
  onSaved,
}: {
  ns: string;
  name: string;
  path: string;
  canWrite: boolean;
  onClose: () => void;
  onSaved?: () => void;
}) {
  const [load, setLoad] = useState<Load>({ state: 'loading' });
  const [status, setStatus] = useState<{ kind: 'clean' | 'dirty' | 'saving' | 'saved' | 'error'; text: string }>({
    kind: 'clean',
    text: '',
  });
  const [confirmClose, setConfirmClose] = useState(false);
  const host = useRef<HTMLDivElement>(null);
  const editor = useRef<Monaco.editor.IStandaloneCodeEditor | null>(null);
  const savedVersion = useRef(0);
  const saveRef = useRef<() => void>(() => undefined);
  const canWriteRef = useRef(canWrite);
  canWriteRef.current = canWrite;
  const filesPath = resourcePath('gameservers', ns, name, 'files');

  // the file: its entry first (size, kind), then its bytes
  useEffect(() => {
    const abort = new AbortController();
    setLoad({ state: 'loading' });
    (async () => {
      const entry = await api<FileEntry>(filesPath, { query: { path, stat: true }, signal: abort.signal });
      const why = notEditable(entry);
      if (why) return setLoad({ state: 'refused', message: why });
      const r = await send(resourcePath('gameservers', ns, name, 'filecontents'), { query: { path }, signal: abort.signal });
      const text = decodeText(new Uint8Array(await r.arrayBuffer()));
      if (text === undefined)
        return setLoad({ state: 'refused', message: `${entry.name} looks like a binary file (not UTF-8 text): download it instead` });
      setLoad({ state: 'ready', text, entry });
    })().catch((e) => {
      if (!abort.signal.aborted) setLoad({ state: 'error', message: messageOf(e) });
    });
    return () => abort.abort();
  }, [ns, name, path, filesPath]);

  // Monaco, once the text is there
  const ready = load.state === 'ready' ? load : null;
  useEffect(() => {
    if (!ready || !host.current) return;
    let disposed = false;
    let model: Monaco.editor.ITextModel | null = null;
    void loadMonaco().then((monaco) => {
      if (disposed || !host.current) return;
      // a URI of our own (a query keeps monaco-yaml's `*.<kind>.yaml` schema globs off server files)
      const uri = monaco.Uri.from({ scheme: 'catalyst-file', authority: ns, path: `/${name}${path}`, query: 'server-file' });
      monaco.editor.getModel(uri)?.dispose();
      const wanted = languageFor(path);
      const known = monaco.languages.getLanguages().some((l) => l.id === wanted);
      model = monaco.editor.createModel(ready.text, known ? wanted : 'plaintext', uri);
      monaco.editor.setTheme(isDark() ? 'vs-dark' : 'vs');
      const ed = monaco.editor.create(host.current, {
        model,
        automaticLayout: true,
        readOnly: !canWriteRef.current,
        minimap: { enabled: false },
        scrollBeyondLastLine: false,
        fontSize: 13,
        tabSize: 2,
        ariaLabel: `Contents of ${path}`,
      });
      editor.current = ed;
      savedVersion.current = model.getAlternativeVersionId();
      model.onDidChangeContent(() => {
        const clean = model?.getAlternativeVersionId() === savedVersion.current;
        setStatus((s) => (s.kind === 'saving' ? s : clean ? { kind: 'clean', text: '' } : { kind: 'dirty', text: 'Unsaved changes' }));
      });
      ed.addCommand(monaco.KeyMod.CtrlCmd | monaco.KeyCode.KeyS, () => saveRef.current());
      setStatus({ kind: 'clean', text: '' });
    });
    return () => {
      disposed = true;
      editor.current?.dispose();
      editor.current = null;
      model?.dispose();
    };
  }, [ready, ns, name, path]);

  // the right to write may be known only after the editor opened: no re-creation, no lost edits
  useEffect(() => {
    editor.current?.updateOptions({ readOnly: !canWrite });
  }, [canWrite]);

  // leaving the page with unsaved changes asks first
  const dirty = status.kind === 'dirty' || status.kind === 'error';
  useEffect(() => {
    if (!dirty) return;
    const warn = (e: BeforeUnloadEvent) => e.preventDefault();
    window.addEventListener('beforeunload', warn);
    return () => window.removeEventListener('beforeunload', warn);
  }, [dirty]);

  const save = async () => {
    const ed = editor.current;
    const model = ed?.getModel();
    if (!ed || !model || !canWrite) return;
    const version = model.getAlternativeVersionId();
    setStatus({ kind: 'saving', text: 'Saving…' });
    try {
      await send(filesPath, {
        method: 'PUT',
        query: { path },
        body: model.getValue(),
        contentType: 'application/octet-stream',
      });
      savedVersion.current = version;
      const clean = model.getAlternativeVersionId() === version;
      setStatus(
        clean
          ? { kind: 'saved', text: `Saved at ${new Date().toLocaleTimeString()}` }
          : { kind: 'dirty', text: 'Saved; newer changes are not saved yet' },
      );
      onSaved?.();
    } catch (e) {
      setStatus({ kind: 'error', text: e instanceof ApiError ? `Not saved: ${e.message}` : `Not saved: ${messageOf(e)}` });
    }
  };
  saveRef.current = () => void save();

  const close = () => {
    if (dirty) setConfirmClose(true);
    else onClose();
  };

  return (
    <section className="file-editor card" aria-labelledby="file-editor-title">
      <div className="toolbar">
        <h2 id="file-editor-title" className="mono file-editor-title">
          {path}
        </h2>
        <span className="spacer" />
        <span
          role={status.kind === 'error' ? 'alert' : 'status'}
          className={status.kind === 'error' ? 'error-text' : status.kind === 'saved' ? 'file-saved' : 'muted'}
          data-testid="file-save-status"
        >
          {status.text}
        </span>
        {canWrite && ready && (
          <button type="button" className="primary" onClick={() => void save()} disabled={status.kind === 'saving'}>
            Save
          </button>
        )}
        <button type="button" onClick={close}>
          Close
        </button>
      </div>
      {!canWrite && ready && <p className="muted">Read only: you may not change this server's files.</p>}
      {load.state === 'loading' && <p className="muted">Loading {path}…</p>}
      {(load.state === 'refused' || load.state === 'error') && (
        <div className={load.state === 'error' ? 'alert' : 'notice'} role="alert">
          {load.message}
        </div>
      )}
      {ready && <div ref={host} className="file-editor-host" data-testid="file-editor" />}
      {confirmClose && (
        <div className="notice" role="alertdialog" aria-labelledby="discard-q">
          <p id="discard-q">Close without saving? Your changes will be lost.</p>
          <div className="toolbar">
            <button type="button" className="danger" onClick={onClose}>
              Discard changes
            </button>
            <button type="button" onClick={() => setConfirmClose(false)}>
              Keep editing
            </button>
          </div>
        </div>
      )}
    </section>
  );
}

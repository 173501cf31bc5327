// The YAML editor of any object: Monaco validating against the kind's schema as you type, a
// review of what an apply would change (a dry-run apply diffed against the live object), apply
// with server-side apply under the field manager `panel`, and the conflict with another
// manager shown with who owns each field, with the choice to force.

import { useCallback, useEffect, useId, useMemo, useRef, useState } from 'react';
import type * as Monaco from 'monaco-editor';
import { parseDocument } from 'yaml';

import { api, ApiError, GROUP, resourcePath } from '../api/client';
import { useCan } from '../api/hooks';
import type { KObject } from '../api/types';
import { byField, parseConflict, type FieldConflict } from '../lib/conflict';
import { changedBy, latestEntry, ownersOf } from '../lib/fieldOwners';
import { loadMonaco, schemaModelUri, type MonacoModule } from '../lib/monaco';
import { changedLines, changedPaths, diffSummary, lineDiff, locate, normalise, toYaml, type DiffLine } from '../lib/yamlDiff';
import { isDark } from './theme';
import './YamlEditor.css';

export const FIELD_MANAGER = 'panel';
const API_MARKERS = 'catalyst-api';
const API_VERSION = GROUP.split('/').slice(2).join('/');

export interface YamlEditorProps {
  kind: string;
  plural: string;
  namespace?: string;
  /** undefined: a new object (its name and namespace come from the YAML) */
  name?: string;
  live?: KObject;
  /** whether the kind is namespaced (for a new object without `namespace`; default: guessed from the YAML) */
  namespaced?: boolean;
  onApplied?: (obj: KObject) => void;
}

/** The object as the editor shows it: normalised, with apiVersion and kind (needed by apply). */
function prepare(obj: KObject, kind: string): Record<string, unknown> {
  return normalise({ apiVersion: API_VERSION, kind, ...obj });
}

function skeleton(kind: string, namespace?: string): string {
  const meta: Record<string, string> = { name: '' };
  if (namespace) meta.namespace = namespace;
  return toYaml({ apiVersion: API_VERSION, kind, metadata: meta, spec: {} });
}

function rv(o: KObject | undefined): number {
  return Number(o?.metadata?.resourceVersion ?? 0) || 0;
}

/** Server-side apply of `text` as the panel. */
function applyYaml(path: string, text: string, o: { dryRun?: boolean; force?: boolean }): Promise<KObject> {
  return api<KObject>(path, {
    method: 'PATCH',
    body: text,
    contentType: 'application/apply-patch+yaml',
    query: { fieldManager: FIELD_MANAGER, force: o.force ? 'true' : undefined, dryRun: o.dryRun ? 'All' : undefined },
  });
}

interface Base {
  /** the text the editor started from (or was last reset / applied to) */
  text: string;
  /** the object that text shows */
  obj?: KObject;
}

interface Review {
  before: string;
  after: string;
  summary: string;
  paths: { path: string; owners: string[] }[];
  lines: DiffLine[];
}

let seq = 0;

export function YamlEditor({ kind, plural, namespace, name, live, namespaced, onApplied }: YamlEditorProps) {
  const creating = name === undefined;
  const titleId = useId();
  const label = creating ? `YAML of the new ${kind}` : `YAML of ${kind} ${namespace ? `${namespace}/` : ''}${name}`;

  const [base, setBaseState] = useState<Base>(() =>
    live && !creating ? { text: toYaml(prepare(live, kind)), obj: live } : { text: skeleton(kind, namespace) },
  );
  const baseRef = useRef(base);
  const [text, setTextState] = useState(base.text);
  const textRef = useRef(text);
  const setText = useCallback((t: string) => {
    textRef.current = t;
    setTextState(t);
  }, []);

  const [monaco, setMonaco] = useState<MonacoModule | null>(null);
  const [loadError, setLoadError] = useState<string | null>(null);
  const [plain, setPlain] = useState(false);
  const hostRef = useRef<HTMLDivElement>(null);
  const editorRef = useRef<Monaco.editor.IStandaloneCodeEditor | null>(null);
  const modelRef = useRef<Monaco.editor.ITextModel | null>(null);
  const [markers, setMarkers] = useState<Monaco.editor.IMarker[]>([]);

  const [busy, setBusy] = useState<'review' | 'apply' | 'force' | null>(null);
  const [review, setReview] = useState<Review | null>(null);
  const [conflicts, setConflicts] = useState<FieldConflict[] | null>(null);
  const [error, setError] = useState<{ message: string; causes: { field?: string; message?: string }[] } | null>(null);
  const [notice, setNotice] = useState<string[] | null>(null);

  // where a new object goes: its name and namespace from the YAML
  const target = useMemo(() => {
    if (!creating) return { namespace, name, problem: undefined as string | undefined };
    const doc = parseDocument(text);
    if (doc.errors.length) return { namespace, name: undefined, problem: `The YAML does not parse: ${doc.errors[0].message}` };
    const meta = (doc.toJS() as { metadata?: { name?: unknown; namespace?: unknown } } | null)?.metadata;
    const n = typeof meta?.name === 'string' && meta.name ? meta.name : undefined;
    const ns = typeof meta?.namespace === 'string' && meta.namespace ? meta.namespace : namespace;
    return { namespace: namespaced === false ? undefined : ns, name: n, problem: n ? undefined : 'Give the object a name (metadata.name).' };
  }, [creating, text, namespace, name, namespaced]);

  const canPatch = useCan('patch', plural, target.namespace, creating ? undefined : target.name);
  const canCreate = useCan('create', plural, target.namespace);
  const allowed = creating ? canPatch === true && canCreate === true : canPatch === true;
  const refused = creating ? canPatch === false || canCreate === false : canPatch === false;
  const editable = creating || canPatch === true;

  const setBase = useCallback(
    (b: Base) => {
      baseRef.current = b;
      setBaseState(b);
      const model = modelRef.current;
      if (model && model.getValue() !== b.text) model.setValue(b.text);
      setText(b.text);
      if (model && monaco) monaco.editor.setModelMarkers(model, API_MARKERS, []);
    },
    [monaco, setText],
  );

  // Monaco, loaded on first use
  useEffect(() => {
    let alive = true;
    loadMonaco().then(
      (m) => alive && setMonaco(m),
      (e: unknown) => alive && setLoadError(e instanceof Error ? e.message : String(e)),
    );
    return () => {
      alive = false;
    };
  }, []);

  // the editor and its model, named so monaco-yaml validates it against the kind's schema
  useEffect(() => {
    const host = hostRef.current;
    if (!monaco || !host) return;
    seq += 1;
    const uri = monaco.Uri.parse(schemaModelUri(kind, `${namespace ?? '_'}-${name ?? 'new'}-${seq}`));
    const model = monaco.editor.createModel(textRef.current, 'yaml', uri);
    modelRef.current = model;
    monaco.editor.setTheme(isDark() ? 'vs-dark' : 'vs');
    const editor = monaco.editor.create(host, {
      model,
      automaticLayout: true,
      minimap: { enabled: false },
      scrollBeyondLastLine: false,
      tabSize: 2,
      fontSize: 13,
      ariaLabel: label,
      readOnly: true,
      fixedOverflowWidgets: true,
    });
    editorRef.current = editor;
    const subs = [
      model.onDidChangeContent(() => {
        const v = model.getValue();
        if (v !== textRef.current) setText(v);
      }),
      monaco.editor.onDidChangeMarkers((uris) => {
        if (uris.some((u) => u.toString() === uri.toString())) setMarkers(monaco.editor.getModelMarkers({ resource: uri }));
      }),
    ];
    // follow the page's theme
    const follow = () => monaco.editor.setTheme(isDark() ? 'vs-dark' : 'vs');
    const observer = new MutationObserver(follow);
    observer.observe(document.documentElement, { attributes: true, attributeFilter: ['data-theme'] });
    const media = window.matchMedia?.('(prefers-color-scheme: dark)');
    media?.addEventListener?.('change', follow);
    return () => {
      observer.disconnect();
      media?.removeEventListener?.('change', follow);
      subs.forEach((s) => s.dispose());
      editor.dispose();
      model.dispose();
      editorRef.current = null;
      modelRef.current = null;
    };
    // the label and names are fixed for one editor (the pages key it by object)
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [monaco, kind]);

  useEffect(() => {
    editorRef.current?.updateOptions({ readOnly: !editable || busy !== null });
  }, [editable, busy, monaco]);

  // the live object moved: follow it while the text is untouched, else say who changed it
  useEffect(() => {
    if (!live || creating || busy) return;
    const b = baseRef.current;
    if (b.obj && rv(live) <= rv(b.obj)) return;
    const liveText = toYaml(prepare(live, kind));
    if (liveText === b.text) {
      baseRef.current = { ...b, obj: live };
      setBaseState(baseRef.current);
    } else if (!b.obj || textRef.current === b.text) {
      setBase({ text: liveText, obj: live });
    }
  }, [live, creating, busy, kind, setBase]);

  const liveText = useMemo(() => (live && !creating ? toYaml(prepare(live, kind)) : undefined), [live, creating, kind]);
  const stale =
    !creating && live && base.obj && rv(live) > rv(base.obj) && liveText !== base.text
      ? (() => {
          const paths = changedPaths(prepare(base.obj!, kind), prepare(live, kind));
          const by = changedBy(live, paths);
          const time = latestEntry(live)?.time;
          return { paths, by, time };
        })()
      : null;
  const dirty = text !== base.text;

  const reset = () => {
    setReview(null);
    setError(null);
    setConflicts(null);
    setNotice(null);
    setBase(live && !creating ? { text: toYaml(prepare(live, kind)), obj: live } : { text: skeleton(kind, namespace) });
  };

  /** Shows an API error: its message, each cause's field, and markers at those fields. */
  const showError = (e: unknown) => {
    if (e instanceof ApiError) {
      const causes = e.status.details?.causes ?? [];
      setError({ message: e.message, causes });
      const model = modelRef.current;
      if (model && monaco) {
        const marks: Monaco.editor.IMarkerData[] = [];
        for (const c of causes) {
          const at = c.field ? locate(model.getValue(), c.field) : undefined;
          if (!at) continue;
          marks.push({
            severity: monaco.MarkerSeverity.Error,
            message: `${c.field}: ${c.message ?? e.message}`,
            startLineNumber: at.line,
            startColumn: at.column,
            endLineNumber: at.line,
            endColumn: model.getLineMaxColumn(at.line),
            source: 'API',
          });
        }
        monaco.editor.setModelMarkers(model, API_MARKERS, marks);
      }
    } else {
      setError({ message: e instanceof Error ? e.message : String(e), causes: [] });
    }
  };

  const path = () => {
    if (target.problem || !target.name) throw new Error(target.problem ?? 'Give the object a name (metadata.name).');
    return resourcePath(plural, target.namespace, target.name);
  };

  const start = () => {
    setError(null);
    setNotice(null);
    if (modelRef.current && monaco) monaco.editor.setModelMarkers(modelRef.current, API_MARKERS, []);
  };

  const runReview = async () => {
    start();
    setBusy('review');
    try {
      const p = path();
      const answer = await applyYaml(p, textRef.current, { dryRun: true });
      const current = creating ? undefined : (live ?? base.obj);
      const before = current ? toYaml(prepare(current, kind)) : '';
      const after = toYaml(prepare(answer, kind));
      const paths = current ? changedPaths(prepare(current, kind), prepare(answer, kind)) : [];
      setReview({
        before,
        after,
        summary: diffSummary(current ? prepare(current, kind) : undefined, prepare(answer, kind)),
        paths: paths.map((pp) => ({ path: pp, owners: ownersOf(current, pp, true) })),
        lines: changedLines(lineDiff(before, after), 1),
      });
    } catch (e) {
      setReview(null);
      showError(e);
    } finally {
      setBusy(null);
    }
  };

  const runApply = async (force: boolean) => {
    start();
    setBusy(force ? 'force' : 'apply');
    const forced = force ? (conflicts ?? []) : [];
    try {
      const p = path();
      if (creating) {
        // apply to an existing name would change that object: a new one must be new
        const exists = await api(p).then(
          () => true,
          (e: unknown) => {
            if (e instanceof ApiError && e.code === 404) return false;
            throw e;
          },
        );
        if (exists) throw new Error(`${kind} ${target.namespace ? `${target.namespace}/` : ''}${target.name} already exists: pick another name, or open it to edit it.`);
      }
      const before = creating ? undefined : (live ?? base.obj);
      const answer = await applyYaml(p, textRef.current, { force });
      setConflicts(null);
      setReview(null);
      setBase({ text: toYaml(prepare(answer, kind)), obj: answer });
      const lines = [`Applied as “${FIELD_MANAGER}”: ${creating ? `created ${kind} ${answer.metadata.name}` : diffSummary(before ? prepare(before, kind) : undefined, prepare(answer, kind))}.`];
      for (const f of byField(forced)) {
        const owners = ownersOf(answer, f.field);
        lines.push(`${f.field} is now managed by ${owners.length ? owners.join(', ') : FIELD_MANAGER} (was ${f.managers.join(', ')}).`);
      }
      setNotice(lines);
      onApplied?.(answer);
    } catch (e) {
      const found = e instanceof ApiError ? parseConflict(e.status) : [];
      if (found.length && !force) setConflicts(found);
      else {
        setConflicts(null);
        showError(e);
      }
    } finally {
      setBusy(null);
    }
  };

  const problems = markers.length;
  const disabled = busy !== null || !allowed || (creating && !!target.problem);

  return (
    <section className="yaml-editor" aria-labelledby={titleId}>
      <h2 id={titleId} className="sr-only">
        {creating ? `New ${kind} as YAML` : `Editing ${kind} ${namespace ? `${namespace}/` : ''}${name} as YAML`}
      </h2>
      {refused && (
        <p className="notice" role="note">
          {creating
            ? `You may not create ${kind} objects${target.namespace ? ` in ${target.namespace}` : ''}: the YAML can be edited but not applied.`
            : `You may not change this ${kind}: the YAML is read-only.`}
        </p>
      )}
      {stale && (
        <div className="notice yaml-stale" role="status">
          <p>
            This {kind} was changed on the server by {stale.by.length ? stale.by.join(', ') : 'another client'}
            {stale.time ? ` at ${new Date(stale.time).toLocaleTimeString()}` : ''}
            {stale.paths.length ? ` (${stale.paths.slice(0, 5).join(', ')}${stale.paths.length > 5 ? ', …' : ''})` : ''} while you were
            editing. Your text is kept; applying it may conflict.
          </p>
          <button type="button" onClick={reset}>
            Reload from server (discard my changes)
          </button>
        </div>
      )}

      <div className="toolbar yaml-toolbar">
        <button type="button" onClick={runReview} disabled={disabled}>
          {busy === 'review' ? 'Reviewing…' : 'Review changes'}
        </button>
        <button type="button" className="primary" onClick={() => runApply(false)} disabled={disabled}>
          {busy === 'apply' ? 'Applying…' : creating ? 'Create' : 'Apply'}
        </button>
        <button type="button" onClick={reset} disabled={busy !== null || (!dirty && !review && !error)}>
          Reset
        </button>
        <span className="spacer" />
        <label className="yaml-plain">
          <input type="checkbox" checked={plain} onChange={(e) => setPlain(e.target.checked)} /> Plain text editor
        </label>
      </div>
      {creating && target.problem && text !== base.text && <p className="error-text">{target.problem}</p>}

      {notice && (
        <div className="notice yaml-ok" role="status" data-testid="apply-result">
          {notice.map((l) => (
            <p key={l}>{l}</p>
          ))}
        </div>
      )}
      {error && (
        <div className="alert" role="alert" data-testid="apply-error">
          <p>{error.message}</p>
          {error.causes.length > 0 && (
            <ul>
              {error.causes.map((c, i) => (
                <li key={i}>
                  {c.field && <code>{c.field}</code>}
                  {c.field && c.message ? ': ' : ''}
                  {c.message}
                </li>
              ))}
            </ul>
          )}
        </div>
      )}

      <div className="yaml-status">
        {!monaco && !loadError && !plain && <span className="muted">Loading editor…</span>}
        {loadError && (
          <span className="error-text" role="alert">
            The editor did not load ({loadError}); the plain text editor works without it.
          </span>
        )}
        {monaco && (
          <details className="yaml-problems">
            <summary data-testid="problem-count">
              {problems === 0 ? 'No problems' : `${problems} problem${problems === 1 ? '' : 's'}`}
            </summary>
            {problems > 0 && (
              <ul>
                {markers.map((m, i) => (
                  <li key={i}>
                    <button
                      type="button"
                      className="link"
                      onClick={() => {
                        setPlain(false);
                        editorRef.current?.revealLineInCenter(m.startLineNumber);
                        editorRef.current?.setPosition({ lineNumber: m.startLineNumber, column: m.startColumn });
                        editorRef.current?.focus();
                      }}
                    >
                      line {m.startLineNumber}
                    </button>
                    : {m.message}
                  </li>
                ))}
              </ul>
            )}
          </details>
        )}
        {dirty && <span className="muted">edited</span>}
      </div>

      <div
        ref={hostRef}
        className="yaml-monaco"
        data-testid="yaml-editor"
        hidden={plain || loadError !== null}
        aria-busy={!monaco}
      />
      {(plain || loadError !== null) && (
        <div className="field">
          <label htmlFor={`${titleId}-text`}>{label}</label>
          <textarea
            id={`${titleId}-text`}
            className="mono yaml-textarea"
            spellCheck={false}
            value={text}
            readOnly={!editable || busy !== null}
            onChange={(e) => {
              setText(e.target.value);
              if (modelRef.current && modelRef.current.getValue() !== e.target.value) modelRef.current.setValue(e.target.value);
            }}
          />
        </div>
      )}

      {review && <ReviewPanel review={review} monaco={monaco} onClose={() => setReview(null)} />}

      {conflicts && (
        <ConflictDialog
          conflicts={conflicts}
          busy={busy === 'force'}
          onForce={() => runApply(true)}
          onCancel={() => setConflicts(null)}
        />
      )}
    </section>
  );
}

/** The review of a dry-run apply: summary, changed paths with owners, changed lines, Monaco's diff. */
function ReviewPanel({ review, monaco, onClose }: { review: Review; monaco: MonacoModule | null; onClose: () => void }) {
  const host = useRef<HTMLDivElement>(null);
  const headingId = useId();
  useEffect(() => {
    if (!monaco || !host.current) return;
    const original = monaco.editor.createModel(review.before, 'yaml');
    const modified = monaco.editor.createModel(review.after, 'yaml');
    const diff = monaco.editor.createDiffEditor(host.current, {
      readOnly: true,
      originalEditable: false,
      automaticLayout: true,
      renderSideBySide: window.innerWidth >= 800,
      minimap: { enabled: false },
      scrollBeyondLastLine: false,
      hideUnchangedRegions: { enabled: true },
      fontSize: 13,
      ariaLabel: 'Live object and the result of applying',
    });
    diff.setModel({ original, modified });
    return () => {
      diff.dispose();
      original.dispose();
      modified.dispose();
    };
  }, [monaco, review]);
  const none = review.lines.length === 0;
  return (
    <section className="card yaml-review" aria-labelledby={headingId}>
      <div className="toolbar">
        <h3 id={headingId} style={{ margin: 0 }}>
          Changes an apply would make
        </h3>
        <span className="spacer" />
        <button type="button" onClick={onClose}>
          Close review
        </button>
      </div>
      <div data-testid="diff-summary">
        <p role="status">{review.summary}</p>
        {review.paths.length > 0 && (
          <ul className="yaml-paths" aria-label="Changed fields">
            {review.paths.map((p) => (
              <li key={p.path}>
                <code>{p.path}</code>
                {p.owners.length > 0 && <span className="muted"> (managed by {p.owners.join(', ')})</span>}
              </li>
            ))}
          </ul>
        )}
      </div>
      {!none && (
        <pre className="mono yaml-lines" data-testid="diff-lines" aria-label="Changed lines">
          {review.lines.map((l, i) => (
            <span key={i} className={l.op === '+' ? 'add' : l.op === '-' ? 'del' : undefined}>
              {l.op === '+' ? '+ ' : l.op === '-' ? '- ' : '  '}
              {l.text}
              {'\n'}
            </span>
          ))}
        </pre>
      )}
      {monaco && !none && <div ref={host} className="yaml-diff" data-testid="diff-editor" />}
    </section>
  );
}

/** The 409 of an apply: each field and who manages it; force takes them, cancel keeps editing. */
function ConflictDialog({
  conflicts,
  busy,
  onForce,
  onCancel,
}: {
  conflicts: FieldConflict[];
  busy: boolean;
  onForce: () => void;
  onCancel: () => void;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  const cancelRef = useRef<HTMLButtonElement>(null);
  const titleId = useId();
  const descId = useId();
  // modal (focus stays inside, Esc closes); the safe choice has the focus
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (!d.open) {
      if (typeof d.showModal === 'function') d.showModal();
      else d.setAttribute('open', '');
    }
    cancelRef.current?.focus();
  }, [conflicts]);
  useEffect(() => {
    const d = ref.current;
    return () => {
      if (d?.open && typeof d.close === 'function') d.close();
    };
  }, []);
  const fields = byField(conflicts);
  return (
    <dialog
      ref={ref}
      className="yaml-conflict"
      aria-labelledby={titleId}
      aria-describedby={descId}
      onCancel={(e) => {
        // Esc: closes (then onClose), except while forcing
        if (busy) e.preventDefault();
      }}
      onClose={onCancel}
    >
      <h2 id={titleId}>Fields managed by someone else</h2>
      <p id={descId}>
        Applying would change {fields.length === 1 ? 'a field' : `${fields.length} fields`} that another manager set. Force
        apply to make “{FIELD_MANAGER}” their owner (the other manager may set them back on its next apply), or cancel and
        leave them out.
      </p>
      <ul data-testid="conflict-fields">
        {fields.map((f) => (
          <li key={f.field}>
            <code>{f.field}</code> is managed by <strong>{f.managers.join(', ')}</strong>
          </li>
        ))}
      </ul>
      <div className="toolbar">
        <button type="button" className="danger" onClick={onForce} disabled={busy}>
          {busy ? 'Forcing…' : 'Force apply (take ownership)'}
        </button>
        <button type="button" ref={cancelRef} onClick={onCancel} disabled={busy}>
          Cancel
        </button>
      </div>
    </dialog>
  );
}

export default YamlEditor;

// Templates: the live list (edit as YAML, delete), and the import of a Pterodactyl egg, converted
// by the API exactly as `catalystctl convert egg` converts it (POST /convert/v1/egg), shown with
// its warnings as YAML, then created under the name the user gives.

import { useMemo, useState, type ChangeEvent, type FormEvent } from 'react';
import { Link } from 'wouter';
import { stringify } from 'yaml';

import { api, ApiError, resourcePath } from '../api/client';
import { useCan, useLiveList } from '../api/hooks';
import type { Template } from '../api/types';
import { DataTable, ErrorAlert, HIDDEN_ACTIONS, ListToolbar } from '../components/AdminKit';
import { dnsLabelError } from '../lib/newServer';
import { imageMapLines } from '../lib/eggImport';
import './templates.css';

interface Conversion {
  template: Template;
  warnings: string[];
}

function errorText(e: unknown): string {
  if (e instanceof ApiError) {
    const causes = e.status.details?.causes ?? [];
    const extra = causes
      .filter((c) => c.field && !e.message.includes(c.field))
      .map((c) => `${c.field}: ${c.message}`)
      .join('; ');
    return extra ? `${e.message} (${extra})` : e.message;
  }
  return e instanceof Error ? e.message : String(e);
}

function TemplateRow({ t, canDelete }: { t: Template; canDelete: boolean }) {
  const [confirming, setConfirming] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState('');
  const spec = (t.spec ?? {}) as Record<string, unknown>;
  const images = Array.isArray(spec.images) ? (spec.images as { name?: string; image?: string }[]) : [];
  const vars = Array.isArray(spec.variables) ? spec.variables.length : 0;
  const source = spec.source as { name?: string; author?: string } | undefined;
  const name = t.metadata.name;
  const remove = async () => {
    setBusy(true);
    setError('');
    try {
      await api(resourcePath('templates', undefined, name), { method: 'DELETE' });
      // the watch removes the row
    } catch (e) {
      setError(errorText(e));
      setBusy(false);
      setConfirming(false);
    }
  };
  return (
    <tr data-testid={`template-row-${name}`}>
      <td className="tpl-name">
        <strong>{name}</strong>
      </td>
      <td className="tpl-desc">{String(spec.description ?? '')}</td>
      <td className="tpl-images">
        {images.map((i, n) => (
          <div key={n} className="mono" title={i.image}>
            {i.name && i.name !== i.image ? i.name : i.image}
          </div>
        ))}
      </td>
      <td>{vars}</td>
      <td>{source?.name ?? <span className="muted">—</span>}</td>
      <td>{t.metadata.generation ?? '—'}</td>
      <td className="tpl-actions">
        <Link href={`/yaml/templates/${encodeURIComponent(name)}`} className="button" aria-label={`Edit YAML of ${name}`}>
          Edit YAML
        </Link>
        {canDelete && !confirming && (
          <button type="button" className="danger" aria-label={`Delete ${name}`} onClick={() => setConfirming(true)}>
            Delete
          </button>
        )}
        {canDelete && confirming && (
          <span role="group" aria-label={`Confirm deleting ${name}`} className="tpl-confirm">
            <span>Delete {name}?</span>
            <button type="button" className="danger" disabled={busy} autoFocus onClick={() => void remove()}>
              {busy ? 'Deleting…' : `Yes, delete ${name}`}
            </button>
            <button type="button" disabled={busy} onClick={() => setConfirming(false)}>
              Cancel
            </button>
          </span>
        )}
        {error && (
          <div className="error-text" role="alert">
            {error}
          </div>
        )}
      </td>
    </tr>
  );
}

function EggImport() {
  const [egg, setEgg] = useState('');
  const [fileName, setFileName] = useState('');
  const [wantedName, setWantedName] = useState('');
  const [imageMap, setImageMap] = useState('');
  const [converting, setConverting] = useState(false);
  const [error, setError] = useState('');
  const [result, setResult] = useState<Conversion | null>(null);
  const [name, setName] = useState('');
  const [creating, setCreating] = useState(false);
  const [createError, setCreateError] = useState('');
  const [created, setCreated] = useState('');

  const map = imageMapLines(imageMap);
  const nameError = result ? dnsLabelError(name.trim()) : null;

  const pick = async (ev: ChangeEvent<HTMLInputElement>) => {
    const f = ev.target.files?.[0];
    if (!f) return;
    setFileName(f.name);
    setEgg(await f.text());
    setResult(null);
    setError('');
  };

  const convert = async (ev: FormEvent) => {
    ev.preventDefault();
    setError('');
    setResult(null);
    setCreated('');
    setCreateError('');
    try {
      JSON.parse(egg);
    } catch (e) {
      setError(`This is not JSON: ${e instanceof Error ? e.message : String(e)}`);
      return;
    }
    if (map.error) {
      setError(`Image map: ${map.error}`);
      return;
    }
    const q = new URLSearchParams();
    if (wantedName.trim()) q.set('name', wantedName.trim());
    for (const m of map.entries) q.append('imageMap', m);
    const qs = q.toString();
    setConverting(true);
    try {
      const r = await api<Conversion>(`/convert/v1/egg${qs ? `?${qs}` : ''}`, {
        method: 'POST',
        body: egg,
        contentType: 'application/json',
      });
      setResult({ template: r.template, warnings: r.warnings ?? [] });
      setName(r.template?.metadata?.name ?? '');
    } catch (e) {
      setError(errorText(e));
    } finally {
      setConverting(false);
    }
  };

  const object = useMemo(() => {
    if (!result) return null;
    return { ...result.template, metadata: { ...result.template.metadata, name: name.trim() } } as Template;
  }, [result, name]);
  const yamlText = useMemo(() => (object ? stringify(object, { lineWidth: 0 }) : ''), [object]);

  const create = async () => {
    if (!object || nameError) return;
    setCreating(true);
    setCreateError('');
    try {
      const t = await api<Template>(resourcePath('templates'), { method: 'POST', body: object });
      setCreated(t?.metadata?.name ?? object.metadata.name);
    } catch (e) {
      setCreateError(errorText(e));
    } finally {
      setCreating(false);
    }
  };

  return (
    <section aria-labelledby="egg-title" className="card tpl-import">
      <h2 id="egg-title" style={{ marginTop: 0 }}>
        Import a Pterodactyl egg
      </h2>
      <p className="muted">
        The API converts the egg as <span className="mono">catalystctl convert egg</span> does; what the Template cannot
        carry over is listed as a warning.
      </p>
      <form onSubmit={convert} noValidate>
        <div className="field">
          <label htmlFor="egg-file">Egg file (JSON)</label>
          <input id="egg-file" type="file" accept=".json,application/json" onChange={(e) => void pick(e)} />
          {fileName && <span className="hint">Read {fileName}.</span>}
        </div>
        <div className="field">
          <label htmlFor="egg-json">Egg JSON</label>
          <span className="hint" id="egg-json-hint">
            Chosen above, or pasted here.
          </span>
          <textarea
            id="egg-json"
            className="mono"
            rows={6}
            spellCheck={false}
            aria-describedby="egg-json-hint"
            value={egg}
            onChange={(e) => {
              setEgg(e.target.value);
              setResult(null);
            }}
          />
        </div>
        <div className="grid-2">
          <div className="field">
            <label htmlFor="egg-name">Template name (optional)</label>
            <span className="hint" id="egg-name-hint">
              Default: a slug of the egg's name.
            </span>
            <input
              id="egg-name"
              value={wantedName}
              spellCheck={false}
              aria-describedby="egg-name-hint"
              onChange={(e) => setWantedName(e.target.value)}
            />
          </div>
          <div className="field">
            <label htmlFor="egg-imagemap">Image map (optional)</label>
            <span className="hint" id="egg-imagemap-hint">
              One <span className="mono">FROM=TO</span> per line: a whole reference or a prefix ending in / or :
            </span>
            <textarea
              id="egg-imagemap"
              className="mono"
              rows={2}
              spellCheck={false}
              aria-invalid={map.error ? true : undefined}
              aria-describedby={`egg-imagemap-hint${map.error ? ' egg-imagemap-error' : ''}`}
              value={imageMap}
              onChange={(e) => setImageMap(e.target.value)}
            />
            {map.error && (
              <span className="error" id="egg-imagemap-error" role="alert">
                {map.error}
              </span>
            )}
          </div>
        </div>
        <ErrorAlert error={error} />
        <div className="toolbar">
          <button type="submit" className="primary" disabled={converting || !egg.trim()}>
            {converting ? 'Converting…' : 'Convert egg'}
          </button>
        </div>
      </form>
      {result && object && (
        <div className="tpl-result">
          <h3>Converted Template</h3>
          {result.warnings.length > 0 ? (
            <div className="notice" role="status">
              <strong>
                {result.warnings.length} warning{result.warnings.length === 1 ? '' : 's'}
              </strong>
              <ul>
                {result.warnings.map((w, i) => (
                  <li key={i} className="mono">
                    {w}
                  </li>
                ))}
              </ul>
            </div>
          ) : (
            <p className="muted" role="status">
              No warnings: everything in the egg has a place in the Template.
            </p>
          )}
          <div className="field">
            <label htmlFor="egg-final-name">Name of the new Template</label>
            <input
              id="egg-final-name"
              value={name}
              spellCheck={false}
              aria-invalid={nameError ? true : undefined}
              aria-describedby={nameError ? 'egg-final-name-error' : undefined}
              onChange={(e) => {
                setName(e.target.value);
                setCreated('');
              }}
            />
            {nameError && (
              <span className="error" id="egg-final-name-error" role="alert">
                {nameError}
              </span>
            )}
          </div>
          <pre className="tpl-yaml mono" tabIndex={0} aria-label="The Template as YAML">
            {yamlText}
          </pre>
          <ErrorAlert error={createError} />
          {created && (
            <div className="notice" role="status">
              Created the Template <span className="mono">{created}</span>.{' '}
              <Link href={`/yaml/templates/${encodeURIComponent(created)}`}>Edit its YAML</Link>
            </div>
          )}
          <div className="toolbar">
            <button type="button" className="primary" disabled={creating || !!nameError || !!created} onClick={() => void create()}>
              {creating ? 'Creating…' : 'Create template'}
            </button>
          </div>
        </div>
      )}
    </section>
  );
}

export function Templates() {
  const list = useLiveList<Template>('templates');
  const canCreate = useCan('create', 'templates');
  const canDelete = useCan('delete', 'templates') === true;
  const rows = useMemo(() => [...list.items].sort((a, b) => a.metadata.name.localeCompare(b.metadata.name)), [list.items]);
  return (
    <section aria-labelledby="tpl-title">
      <ListToolbar
        id="tpl-title"
        title="Templates"
        loading={list.isLoading}
        count={`${rows.length}`}
      >
        {canCreate && (
          <Link href="/yaml/templates/new" className="button primary">
            New template
          </Link>
        )}
      </ListToolbar>
      <ErrorAlert error={list.error} />
      <DataTable
        label="Templates"
        columns={['Name', 'Description', 'Images', 'Variables', 'Egg', 'Generation', HIDDEN_ACTIONS]}
        empty={!list.isLoading && rows.length === 0 ? 'No templates yet.' : null}
      >
        {rows.map((t) => (
          <TemplateRow key={t.metadata.name} t={t} canDelete={canDelete} />
        ))}
      </DataTable>
      {canCreate && <EggImport />}
    </section>
  );
}

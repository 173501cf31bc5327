// A server's startup variables as a form generated from its Template's variables and rules. The
// browser checks what it can as the user types; after 500 ms of quiet the API checks the edit
// with a dry-run server-side apply (the authority: its 422 causes land on the inputs); Save is
// the same apply under field manager `panel`, and a conflict with another manager offers to take
// ownership (force).

import { useEffect, useMemo, useState, type FormEvent } from 'react';

import { ApiError, resourcePath, send } from '../../api/client';
import { useCan, useLiveList } from '../../api/hooks';
import type { GameServer, Template } from '../../api/types';
import { causesByVariable, plainFields, variablesForm, variablesToSend, type FieldDescriptor } from '../../lib/variablesForm';
import { VariableFields, fieldError, useQuietRun } from './VariableFields';

/** A server-side apply of `spec.variables` (dry run or not, forced or not). */
export async function applyVariables(
  gs: GameServer,
  variables: Record<string, string>,
  opts: { dryRun?: boolean; force?: boolean; signal?: AbortSignal } = {},
): Promise<{ object: GameServer; changed: boolean }> {
  const ns = gs.metadata.namespace ?? 'default';
  const body = {
    apiVersion: gs.apiVersion ?? 'catalyst.dev/v1alpha1',
    kind: 'GameServer',
    metadata: { name: gs.metadata.name, namespace: ns },
    spec: { variables },
  };
  const r = await send(resourcePath('gameservers', ns, gs.metadata.name), {
    method: 'PATCH',
    // JSON is YAML: the apply endpoint reads it as the apply-patch+yaml it is
    body: JSON.stringify(body),
    contentType: 'application/apply-patch+yaml',
    query: { fieldManager: 'panel', dryRun: opts.dryRun ? 'All' : undefined, force: opts.force ? 'true' : undefined },
    signal: opts.signal,
  });
  const object = (await r.json()) as GameServer;
  return { object, changed: r.headers.get('catalyst-changed') !== 'false' };
}

type Outcome =
  | { kind: 'none' }
  | { kind: 'saved'; changed: boolean }
  | { kind: 'error'; message: string }
  | { kind: 'conflict'; message: string };

/** The newer of two versions of an object, by resourceVersion (numbers in Catalyst). */
function newer(a: GameServer, b: GameServer | null): GameServer {
  if (!b) return a;
  const x = Number(a.metadata.resourceVersion);
  const y = Number(b.metadata.resourceVersion);
  return Number.isFinite(x) && Number.isFinite(y) && y > x ? b : a;
}

export default function Variables({ gs: live }: { gs: GameServer }) {
  // the answer of a save until the watch brings it (no flash of the old values)
  const [saved, setSaved] = useState<GameServer | null>(null);
  const gs = newer(live, saved);
  const ns = gs.metadata.namespace ?? 'default';
  const name = gs.metadata.name;
  const templateName = gs.spec?.template;
  const tplList = useLiveList<Template>('templates', undefined, { fieldSelector: `metadata.name=${templateName ?? ''}` }, !!templateName);
  const tpl = { object: templateName ? tplList.byKey.get(templateName) : undefined, isLoading: !!templateName && tplList.isLoading, error: tplList.error };
  const operator = useCan('update', 'templates') === true;
  const canPatch = useCan('patch', 'gameservers', ns, name);

  const current = gs.spec?.variables;
  const template = templateName ? tpl.object : undefined;
  const fields: FieldDescriptor[] = useMemo(
    () =>
      template
        ? variablesForm(template.spec?.variables, current, operator)
        : plainFields(current, true),
    [template, current, operator],
  );

  const [edits, setEdits] = useState<Record<string, string>>({});
  const [serverErrors, setServerErrors] = useState<Map<string, string[]>>(new Map());
  const [owners, setOwners] = useState<Map<string, string[]>>(new Map());
  const [outcome, setOutcome] = useState<Outcome>({ kind: 'none' });
  const [saving, setSaving] = useState(false);

  const values = useMemo(() => {
    const v: Record<string, string> = {};
    for (const f of fields) v[f.name] = f.name in edits ? edits[f.name] : f.value;
    return v;
  }, [fields, edits]);
  // only what the user changed is new; the rest is sent as the server has it
  const dirty = Object.keys(edits).filter((k) => edits[k] !== (fields.find((f) => f.name === k)?.value ?? ''));
  const toSend = variablesToSend(current, Object.fromEntries(dirty.map((k) => [k, edits[k]])));
  const sendKey = JSON.stringify(toSend);
  const readOnly = canPatch !== true;

  const take = (e: unknown) => {
    if (e instanceof ApiError) {
      const causes = e.status.details?.causes;
      if (e.code === 409) {
        setOwners(causesByVariable(causes));
        setServerErrors(new Map());
        return;
      }
      setOwners(new Map());
      setServerErrors(causesByVariable(causes));
      return;
    }
    throw e;
  };

  const checking = useQuietRun(sendKey, dirty.length > 0 && !readOnly, async (signal) => {
    try {
      await applyVariables(gs, toSend, { dryRun: true, signal });
      if (signal.aborted) return;
      setServerErrors(new Map());
      setOwners(new Map());
    } catch (e) {
      if (signal.aborted || (e instanceof DOMException && e.name === 'AbortError')) return;
      if (e instanceof ApiError) take(e);
    }
  });

  // back to what the server has: nothing is pending, so no answer about it stays shown
  const clean = dirty.length === 0;
  useEffect(() => {
    if (!clean) return;
    setServerErrors((m) => (m.size ? new Map() : m));
    setOwners((m) => (m.size ? new Map() : m));
  }, [clean]);

  const localErrors = fields.filter((f) => !f.hidden && dirty.includes(f.name) && fieldError(f, values[f.name], new Map()));

  const save = async (force: boolean) => {
    setSaving(true);
    setOutcome({ kind: 'none' });
    try {
      const r = await applyVariables(gs, toSend, { force });
      if (r.object?.metadata) setSaved(r.object);
      setEdits({});
      setServerErrors(new Map());
      setOwners(new Map());
      setOutcome({ kind: 'saved', changed: r.changed });
    } catch (e) {
      if (e instanceof ApiError) {
        take(e);
        setOutcome({ kind: e.code === 409 ? 'conflict' : 'error', message: e.message });
      } else {
        setOutcome({ kind: 'error', message: e instanceof Error ? e.message : String(e) });
      }
    } finally {
      setSaving(false);
    }
  };

  const submit = (ev: FormEvent) => {
    ev.preventDefault();
    void save(false);
  };

  const otherErrors = serverErrors.get('');
  const ownerNotes = useMemo(() => {
    const m = new Map<string, string[]>();
    for (const [k, msgs] of owners) if (k) m.set(k, msgs.map((x) => `Saving takes it over: ${x}`));
    return m;
  }, [owners]);

  return (
    <section aria-labelledby="vars-title">
      <h2 id="vars-title">Startup variables</h2>
      {templateName ? (
        <p className="muted">
          From the Template <span className="mono">{templateName}</span>
          {template?.metadata.generation !== undefined && <> (generation {template.metadata.generation})</>}. Changes
          apply at the server's next start.
        </p>
      ) : (
        <p className="muted">This server names no Template: its variables are plain values.</p>
      )}
      {templateName && !template && !tpl.isLoading && (
        <div className="notice" role="status">
          The Template <span className="mono">{templateName}</span> could not be read
          {tpl.error instanceof Error ? `: ${tpl.error.message}` : ''}. The variables are shown as plain text; the API
          still checks them against the Template on save.
        </div>
      )}
      {readOnly && canPatch === false && (
        <p className="notice" role="note">
          You may look at these variables but not change them.
        </p>
      )}
      {templateName && tpl.isLoading ? (
        <p className="muted">Loading the Template…</p>
      ) : (
        <form onSubmit={submit} noValidate aria-describedby={outcome.kind !== 'none' ? 'vars-outcome' : undefined}>
          {fields.length === 0 ? (
            <p className="muted">No variables.</p>
          ) : (
            <VariableFields
              fields={fields}
              values={values}
              onChange={(k, v) => {
                setEdits((old) => ({ ...old, [k]: v }));
                setOutcome({ kind: 'none' });
              }}
              serverErrors={serverErrors}
              notes={ownerNotes}
              disabled={readOnly || saving}
              idPrefix="var"
            />
          )}
          {otherErrors && otherErrors.length > 0 && (
            <div className="alert" role="alert">
              {otherErrors.join('; ')}
            </div>
          )}
          {outcome.kind === 'error' && (
            <div className="alert" role="alert" id="vars-outcome">
              {outcome.message}
            </div>
          )}
          {outcome.kind === 'conflict' && (
            <div className="alert" role="alert" id="vars-outcome">
              <p style={{ marginTop: 0 }}>{outcome.message}</p>
              <button type="button" className="danger" disabled={saving} onClick={() => void save(true)}>
                Save anyway (take ownership)
              </button>
            </div>
          )}
          {outcome.kind === 'saved' && (
            <div className="notice" role="status" id="vars-outcome">
              {outcome.changed ? 'Saved. The server uses the new values at its next start.' : 'Saved: nothing changed.'}
            </div>
          )}
          {!readOnly && (
            <div className="toolbar var-actions">
              <button type="submit" className="primary" disabled={saving || dirty.length === 0 || localErrors.length > 0}>
                {saving ? 'Saving…' : 'Save variables'}
              </button>
              <button type="button" disabled={saving || Object.keys(edits).length === 0} onClick={() => {
                setEdits({});
                setServerErrors(new Map());
                setOwners(new Map());
                setOutcome({ kind: 'none' });
              }}>
                Discard changes
              </button>
              <span className="muted" aria-live="polite">
                {checking ? 'Checking with the server…' : dirty.length ? `${dirty.length} changed` : ''}
              </span>
            </div>
          )}
        </form>
      )}
    </section>
  );
}

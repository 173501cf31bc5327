// A GameServer's Schedules (live from the watch): cron in words, next/last run and result,
// enable/disable, run now, delete; a form to create or edit one with its ordered tasks.

import { useMemo, useState } from 'react';

import { api, ApiError, resourcePath } from '../../api/client';
import { useCan } from '../../api/hooks';
import type { GameServer, KObject } from '../../api/types';
import { DataTable, ErrorAlert, HIDDEN_ACTIONS, StatusNotice, ListToolbar, DeniedSection } from '../../components/AdminKit';
import { CRON_PRESETS, explainCron } from '../../lib/cron';
import { nameProblem } from '../../lib/jobs';
import { byName } from '../../lib/serverItems';
import {
  emptyForm,
  emptyTask,
  formOf,
  formProblems,
  MAX_TASKS,
  move,
  specOf,
  TASK_ACTIONS,
  type ScheduleForm,
  type ScheduleSpec,
  type TaskAction,
  type TaskForm,
} from '../../lib/schedule';
import { useServerItems } from '../../components/useServerItems';
import { DeleteDialog, messageOf } from './files/Dialog';
import './files.css';

interface TaskResult {
  index: number;
  action: string;
  startedAt: string;
  finishedAt?: string | null;
  outcome: string;
  message?: string | null;
  backup?: string | null;
}

interface Schedule extends KObject {
  spec?: ScheduleSpec & Record<string, unknown>;
  status?: {
    lastResult?: string | null;
    lastRunTime?: string | null;
    lastScheduleTime?: string | null;
    nextRunTime?: string | null;
    message?: string | null;
    lastTasks?: TaskResult[];
    conditions?: { type: string; status: string; message?: string }[];
  };
}

const when = (t?: string | null) => (t ? <time dateTime={t}>{new Date(t).toLocaleString()}</time> : '—');

const RESULT_CLASS: Record<string, string> = {
  Succeeded: 'ok',
  Running: '',
  Failed: 'bad',
  Interrupted: 'bad',
  Skipped: 'warn',
  Missed: 'warn',
};

const ESCALATION_HINT =
  'A schedule acts with the rights of whoever wrote it: to save one, you need the right to do each of its tasks yourself (send console commands, start/stop/restart this server, create backups).';

export default function Schedules({ gs }: { gs: GameServer }) {
  const { ns, server, canList, canCreate, canPatch, canDelete, list, mine } = useServerItems<Schedule>('schedules', gs, byName);
  const canRun = useCan('create', 'schedules/run', ns);
  const [editing, setEditing] = useState<{ name?: string; form: ScheduleForm } | null>(null);
  const [deleting, setDeleting] = useState<Schedule | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [notice, setNotice] = useState('');
  const [busy, setBusy] = useState('');

  const act = async (s: Schedule, what: 'run' | 'enable' | 'disable') => {
    const n = s.metadata.name;
    setBusy(n);
    setError(null);
    try {
      if (what === 'run') {
        await api(resourcePath('schedules', ns, n, 'run'), { method: 'POST', query: { fieldManager: 'panel' } });
        setNotice(`${n}: run requested; its tasks start shortly.`);
      } else {
        await api(resourcePath('schedules', ns, n), {
          method: 'PATCH',
          query: { fieldManager: 'panel' },
          body: { spec: { suspend: what === 'disable' } },
          contentType: 'application/merge-patch+json',
        });
        setNotice(`${n} is ${what === 'disable' ? 'disabled' : 'enabled'}.`);
      }
    } catch (e) {
      setError(e);
    } finally {
      setBusy('');
    }
  };

  if (canList === false) {
    return <DeniedSection id="schedules-title" title="Schedules" text="You may not see this namespace's schedules." />;
  }

  if (editing) {
    return (
      <ScheduleEditor
        ns={ns}
        server={server}
        name={editing.name}
        initial={editing.form}
        onClose={() => setEditing(null)}
        onSaved={(n, created) => {
          setEditing(null);
          setNotice(`Schedule ${n} ${created ? 'created' : 'saved'}.`);
        }}
      />
    );
  }

  return (
    <section aria-labelledby="schedules-title">
      <ListToolbar
        id="schedules-title"
        title="Schedules"
        level={2}
        loading={list.isLoading}
        count={`${mine.length}`}
      >
        {canCreate && (
          <button type="button" className="primary" onClick={() => (setNotice(''), setEditing({ form: emptyForm() }))}>
            New schedule
          </button>
        )}
      </ListToolbar>
      {error != null && (
        <div className="alert" role="alert">
          {messageOf(error)}
          {error instanceof ApiError && error.code === 403 && <p>{ESCALATION_HINT}</p>}
        </div>
      )}
      <StatusNotice text={notice} />
      <ErrorAlert error={list.error} />
      <DataTable
        label={`Schedules of ${server}`}
        columns={['Name', 'When', { label: 'Next run', className: 'col-hide-phone' }, 'Last run', HIDDEN_ACTIONS]}
        empty={!list.isLoading && mine.length === 0 ? <>No schedules for {server} yet.</> : null}
      >
        {mine.map((s) => {
          const n = s.metadata.name;
          const spec = s.spec as ScheduleSpec;
          const explained = explainCron(spec.cron ?? '');
          const suspended = spec.suspend === true;
          const result = s.status?.lastResult;
          const invalid = s.status?.conditions?.find((c) => c.type === 'Valid' && c.status === 'False');
          return (
            <tr key={n}>
              <td>
                <span className="mono">{n}</span>{' '}
                {suspended ? <span className="job-badge warn">disabled</span> : <span className="job-badge ok">enabled</span>}
                <div className="job-row-sub">
                  {(spec.tasks ?? []).map((t) => t.action).join(' → ') || 'no tasks'}
                </div>
              </td>
              <td>
                <code>{spec.cron}</code>
                <div className="job-row-sub">
                  {explained.ok ? explained.description : explained.error}
                  {spec.timezone && spec.timezone !== 'UTC' ? ` (${spec.timezone})` : ' (UTC)'}
                </div>
                {invalid && <div className="job-row-sub error-text">{invalid.message}</div>}
              </td>
              <td className="col-hide-phone">{suspended ? 'disabled' : when(s.status?.nextRunTime)}</td>
              <td>
                {result ? <span className={`job-badge ${RESULT_CLASS[result] ?? ''}`}>{result}</span> : <span className="muted">never</span>}{' '}
                {when(s.status?.lastRunTime)}
                {s.status?.message && <div className="job-row-sub">{s.status.message}</div>}
                {(s.status?.lastTasks?.length ?? 0) > 0 && (
                  <details>
                    <summary>Tasks of the last run</summary>
                    <ol className="job-row-sub">
                      {s.status?.lastTasks?.map((t) => (
                        <li key={t.index}>
                          {t.action}: {t.outcome}
                          {t.backup ? ` (backup ${t.backup})` : ''}
                          {t.message ? ` — ${t.message}` : ''}
                        </li>
                      ))}
                    </ol>
                  </details>
                )}
              </td>
              <td>
                <div className="row-actions">
                  {canRun && (
                    <button type="button" disabled={busy === n} onClick={() => void act(s, 'run')} aria-label={`Run ${n} now`}>
                      Run now
                    </button>
                  )}
                  {canPatch && (
                    <>
                      <button
                        type="button"
                        disabled={busy === n}
                        onClick={() => void act(s, suspended ? 'enable' : 'disable')}
                        aria-label={`${suspended ? 'Enable' : 'Disable'} ${n}`}
                      >
                        {suspended ? 'Enable' : 'Disable'}
                      </button>
                      <button
                        type="button"
                        onClick={() => (setNotice(''), setEditing({ name: n, form: formOf(n, spec) }))}
                        aria-label={`Edit ${n}`}
                      >
                        Edit
                      </button>
                    </>
                  )}
                  {canDelete && (
                    <button type="button" className="danger" onClick={() => setDeleting(s)} aria-label={`Delete ${n}`}>
                      Delete
                    </button>
                  )}
                </div>
              </td>
            </tr>
          );
        })}
      </DataTable>
      {deleting && (
        <DeleteSchedule
          ns={ns}
          schedule={deleting}
          onClose={() => setDeleting(null)}
          onDone={() => {
            setNotice(`${deleting.metadata.name} deleted.`);
            setDeleting(null);
          }}
        />
      )}
    </section>
  );
}

function DeleteSchedule({ ns, schedule, onClose, onDone }: { ns: string; schedule: Schedule; onClose: () => void; onDone: () => void }) {
  return (
    <DeleteDialog plural="schedules" ns={ns} name={schedule.metadata.name} onClose={onClose} onDone={onDone}>
      <p>It stops running. Backups it made are kept.</p>
    </DeleteDialog>
  );
}

function zones(): string[] {
  try {
    return (Intl as unknown as { supportedValuesOf?: (k: string) => string[] }).supportedValuesOf?.('timeZone') ?? [];
  } catch {
    return [];
  }
}

function ScheduleEditor({
  ns,
  server,
  name,
  initial,
  onClose,
  onSaved,
}: {
  ns: string;
  server: string;
  name?: string;
  initial: ScheduleForm;
  onClose: () => void;
  onSaved: (name: string, created: boolean) => void;
}) {
  const creating = name === undefined;
  const [f, setF] = useState<ScheduleForm>(initial);
  const [err, setErr] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [tried, setTried] = useState(false);
  const explained = explainCron(f.cron);
  const local = formProblems(f);
  const nameBad = creating ? nameProblem(f.name) : undefined;
  const tz = useMemo(zones, []);

  /** The message for `field`: the form's own check (after a first try), else the API's. */
  const problem = (field: string) =>
    (tried ? local[field] : undefined) ?? (err instanceof ApiError ? err.causeFor(field) : undefined);
  const set = <K extends keyof ScheduleForm>(k: K, v: ScheduleForm[K]) => setF((o) => ({ ...o, [k]: v }));
  const setTask = (i: number, t: Partial<TaskForm>) => setF((o) => ({ ...o, tasks: o.tasks.map((x, j) => (j === i ? { ...x, ...t } : x)) }));

  const save = async () => {
    setTried(true);
    if (nameBad || !explained.ok || Object.keys(local).length) return;
    setBusy(true);
    setErr(null);
    const spec = specOf(f, server);
    try {
      if (creating) {
        const body = { ...spec } as Record<string, unknown>;
        if (body.startingDeadlineSeconds === null) delete body.startingDeadlineSeconds;
        await api(resourcePath('schedules', ns), {
          method: 'POST',
          query: { fieldManager: 'panel' },
          body: { apiVersion: 'catalyst.dev/v1alpha1', kind: 'Schedule', metadata: { name: f.name, namespace: ns }, spec: body },
        });
      } else {
        await api(resourcePath('schedules', ns, name), {
          method: 'PATCH',
          query: { fieldManager: 'panel' },
          body: { spec },
          contentType: 'application/merge-patch+json',
        });
      }
      onSaved(creating ? f.name : (name as string), creating);
    } catch (e) {
      setErr(e);
    } finally {
      setBusy(false);
    }
  };

  const cronProblem = (tried || f.cron.trim() ? (explained.ok ? undefined : explained.error) : undefined) ?? problem('spec.cron');

  return (
    <section className="card schedule-form" aria-labelledby="sched-form-title">
      <h2 id="sched-form-title" style={{ marginTop: 0 }}>
        {creating ? `New schedule for ${server}` : `Edit ${name}`}
      </h2>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void save();
        }}
        noValidate
      >
        <div className="grid-2">
          {creating && (
            <div className="field">
              <label htmlFor="sc-name">Name</label>
              <input
                id="sc-name"
                value={f.name}
                onChange={(e) => set('name', e.target.value)}
                aria-invalid={tried && !!nameBad}
                placeholder="nightly-restart"
              />
              {tried && nameBad && <span className="error">{nameBad}</span>}
              {problem('metadata.name') && <span className="error">{problem('metadata.name')}</span>}
            </div>
          )}
          <div className="field">
            <label htmlFor="sc-cron">Cron expression</label>
            <input
              id="sc-cron"
              className="mono"
              value={f.cron}
              onChange={(e) => set('cron', e.target.value)}
              aria-invalid={!!cronProblem}
              aria-describedby="sc-cron-explain"
            />
            <span id="sc-cron-explain" className="hint" aria-live="polite">
              {explained.ok ? <span className="cron-explain">{explained.description}</span> : null}
              {explained.ok && ` (${f.timezone || 'UTC'})`}
              {!explained.ok && 'minute hour day-of-month month day-of-week, e.g. 0 4 * * *'}
            </span>
            {cronProblem && <span className="error">{cronProblem}</span>}
          </div>
          <div className="field">
            <label htmlFor="sc-preset">Common times</label>
            <select id="sc-preset" value="" onChange={(e) => e.target.value && set('cron', e.target.value)}>
              <option value="">Pick one to fill in the expression…</option>
              {CRON_PRESETS.map((p) => (
                <option key={p.cron} value={p.cron}>
                  {p.label} ({p.cron})
                </option>
              ))}
            </select>
          </div>
          <div className="field">
            <label htmlFor="sc-tz">Time zone</label>
            <input id="sc-tz" list="sc-tz-list" value={f.timezone} onChange={(e) => set('timezone', e.target.value)} aria-invalid={!!problem('spec.timezone')} />
            <datalist id="sc-tz-list">
              {tz.map((z) => (
                <option key={z} value={z} />
              ))}
            </datalist>
            <span className="hint">An IANA name such as Europe/Berlin; the cron fields are wall-clock times there.</span>
            {problem('spec.timezone') && <span className="error">{problem('spec.timezone')}</span>}
          </div>
          <div className="field">
            <label htmlFor="sc-deadline">Starting deadline (seconds, optional)</label>
            <input
              id="sc-deadline"
              type="number"
              min={10}
              value={f.deadline}
              onChange={(e) => set('deadline', e.target.value)}
              aria-invalid={!!problem('spec.startingDeadlineSeconds')}
            />
            <span className="hint">A missed run starts late only within this many seconds; empty: however late.</span>
            {problem('spec.startingDeadlineSeconds') && <span className="error">{problem('spec.startingDeadlineSeconds')}</span>}
          </div>
        </div>
        <label className="fm-check">
          <input type="checkbox" checked={f.onlyWhenRunning} onChange={(e) => set('onlyWhenRunning', e.target.checked)} /> Only when
          the server is Running (else the run is skipped)
        </label>
        <label className="fm-check">
          <input type="checkbox" checked={!f.suspend} onChange={(e) => set('suspend', !e.target.checked)} /> Enabled
        </label>

        <fieldset>
          <legend>Tasks, in order</legend>
          {f.tasks.map((t, i) => (
            <div className="task-row" key={i} role="group" aria-label={`Task ${i + 1}`}>
              <div className="field">
                <label htmlFor={`sc-t${i}-action`}>Task {i + 1} action</label>
                <select id={`sc-t${i}-action`} value={t.action} onChange={(e) => setTask(i, { action: e.target.value as TaskAction })}>
                  {TASK_ACTIONS.map((a) => (
                    <option key={a} value={a}>
                      {a === 'Command' ? 'Send a console command' : a === 'Backup' ? 'Take a backup' : `${a} the server`}
                    </option>
                  ))}
                </select>
              </div>
              <div className="field">
                {t.action === 'Command' ? (
                  <>
                    <label htmlFor={`sc-t${i}-payload`}>Task {i + 1} console command</label>
                    <input
                      id={`sc-t${i}-payload`}
                      className="mono"
                      value={t.payload}
                      placeholder="say Restarting in 5 minutes"
                      onChange={(e) => setTask(i, { payload: e.target.value })}
                      aria-invalid={!!problem(`spec.tasks[${i}].payload`)}
                    />
                    {problem(`spec.tasks[${i}].payload`) && <span className="error">{problem(`spec.tasks[${i}].payload`)}</span>}
                  </>
                ) : (
                  <span className="hint">
                    {t.action === 'Backup' ? `A Backup of ${server} named after the schedule and the time.` : `${t.action}s ${server}.`}
                  </span>
                )}
              </div>
              <div className="field">
                <label htmlFor={`sc-t${i}-offset`}>Task {i + 1} delay (s)</label>
                <input
                  id={`sc-t${i}-offset`}
                  type="number"
                  min={0}
                  value={t.offset}
                  onChange={(e) => setTask(i, { offset: e.target.value })}
                  aria-invalid={!!problem(`spec.tasks[${i}].offsetSeconds`)}
                  aria-describedby={`sc-t${i}-offset-hint`}
                />
                <span id={`sc-t${i}-offset-hint`} className="hint">
                  after the {i === 0 ? 'run begins' : 'previous task ends'}
                </span>
                {problem(`spec.tasks[${i}].offsetSeconds`) && <span className="error">{problem(`spec.tasks[${i}].offsetSeconds`)}</span>}
              </div>
              <div className="task-tools">
                <label className="fm-check" style={{ margin: 0 }}>
                  <input type="checkbox" checked={t.continueOnFailure} onChange={(e) => setTask(i, { continueOnFailure: e.target.checked })} />{' '}
                  Go on if it fails
                </label>
                <span className="spacer" />
                <button type="button" disabled={i === 0} onClick={() => set('tasks', move(f.tasks, i, -1))} aria-label={`Move task ${i + 1} up`}>
                  Up
                </button>
                <button
                  type="button"
                  disabled={i === f.tasks.length - 1}
                  onClick={() => set('tasks', move(f.tasks, i, 1))}
                  aria-label={`Move task ${i + 1} down`}
                >
                  Down
                </button>
                <button
                  type="button"
                  className="danger"
                  onClick={() => set('tasks', f.tasks.filter((_, j) => j !== i))}
                  aria-label={`Remove task ${i + 1}`}
                >
                  Remove
                </button>
              </div>
            </div>
          ))}
          {problem('spec.tasks') && <p className="error-text">{problem('spec.tasks')}</p>}
          <div className="toolbar" style={{ marginTop: 8 }}>
            <button type="button" disabled={f.tasks.length >= MAX_TASKS} onClick={() => set('tasks', [...f.tasks, emptyTask()])}>
              Add task
            </button>
          </div>
        </fieldset>

        {err != null && (
          <div className="alert" role="alert">
            {messageOf(err)}
            {err instanceof ApiError && err.code === 403 && <p>{ESCALATION_HINT}</p>}
          </div>
        )}
        <div className="toolbar">
          <span className="spacer" />
          <button type="button" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" className="primary" disabled={busy}>
            {busy ? 'Saving…' : creating ? 'Create schedule' : 'Save schedule'}
          </button>
        </div>
      </form>
    </section>
  );
}

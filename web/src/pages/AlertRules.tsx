import { useMemo, useState, type FormEvent } from 'react';
import { Link } from 'wouter';

import { api, ApiError, resourcePath } from '../api/client';
import { useCan, useLiveList } from '../api/hooks';
import { keyOf } from '../api/watch';
import { Ago, ConfirmButton, ErrorAlert, FieldError, NamespaceField, useNamespaceScope, useRunner, DataTable, ListToolbar } from '../components/AdminKit';
import {
  alertRuleFromForm,
  describeCondition,
  describeTarget,
  EVENTS,
  FORMATS,
  formFieldOf,
  METRICS,
  ruleState,
  type AlertForm,
  type AlertRule,
} from '../lib/alerts';
import { isPast } from '../lib/time';
import '../components/AdminKit.css';

function StateBadge({ rule }: { rule: AlertRule }) {
  const s = ruleState(rule.status);
  const cls = s.word === 'Firing' ? 'danger' : s.word === 'Pending' ? 'warn' : 'ok';
  return <span className={`badge ${cls}`}>{s.count ? `${s.word} (${s.count})` : s.word}</span>;
}

function RuleRow({ rule }: { rule: AlertRule }) {
  const ns = rule.metadata.namespace ?? '';
  const name = rule.metadata.name;
  const canPatch = useCan('patch', 'alertrules', ns, name);
  const canDelete = useCan('delete', 'alertrules', ns, name);
  const [open, setOpen] = useState(false);
  const runner = useRunner();
  const path = resourcePath('alertrules', ns, name);
  const silenced = !!rule.spec?.silencedUntil && !isPast(rule.spec.silencedUntil);
  const silence = (until: string | null) =>
    runner.run(() =>
      api(path, {
        method: 'PATCH',
        query: { fieldManager: 'panel' },
        contentType: 'application/merge-patch+json',
        body: JSON.stringify({ spec: { silencedUntil: until } }),
      }),
    );
  const alerts = rule.status?.alerts ?? [];
  return (
    <>
      <tr data-testid={`alertrule-row-${ns}/${name}`}>
        <td>
          <button
            type="button"
            aria-expanded={open}
            onClick={() => setOpen(!open)}
            aria-label={`${open ? 'Hide' : 'Show'} alerts of ${name}`}
          >
            {open ? '▾' : '▸'}
          </button>{' '}
          <strong>{name}</strong>
        </td>
        <td>{ns}</td>
        <td style={{ whiteSpace: 'normal' }}>{describeTarget(rule.spec)}</td>
        <td>{describeCondition(rule.spec)}</td>
        <td>
          <StateBadge rule={rule} />
          {silenced && (
            <>
              {' '}
              <span className="badge info">
                Silenced until <Ago iso={rule.spec?.silencedUntil} />
              </span>
            </>
          )}
        </td>
        <td>
          <Ago iso={rule.status?.lastFiredAt} />
        </td>
        <td className="actions-cell">
          <div className="actions">
            {canPatch &&
              (silenced ? (
                <button type="button" disabled={runner.busy} onClick={() => void silence(null)}>
                  Unsilence {name}
                </button>
              ) : (
                <button
                  type="button"
                  disabled={runner.busy}
                  onClick={() => void silence(new Date(Date.now() + 3600_000).toISOString())}
                >
                  Silence {name} for 1 h
                </button>
              ))}
            <Link href={`/yaml/alertrules/${encodeURIComponent(ns)}/${encodeURIComponent(name)}`}>Edit YAML</Link>
            {canDelete && (
              <ConfirmButton confirm={`Delete ${name} now`} onConfirm={async () => void (await runner.run(() => api(path, { method: 'DELETE' })))}>
                Delete {name}
              </ConfirmButton>
            )}
          </div>
          <ErrorAlert error={runner.error} />
        </td>
      </tr>
      {open && (
        <tr className="detail-row">
          <td colSpan={7}>
            {alerts.length === 0 ? (
              <p className="muted">No alert: nothing holds the condition now.</p>
            ) : (
              <DataTable
                label={`Alerts of ${name}`}
                columns={['Target', 'State', 'Since', 'Value', 'Message']}
              >
                {alerts.map((a) => (
                  <tr key={a.target}>
                    <td>{a.target}</td>
                    <td>{a.state}</td>
                    <td>
                      <Ago iso={a.since} />
                    </td>
                    <td>{a.value ?? '—'}</td>
                    <td style={{ whiteSpace: 'normal' }}>{a.message ?? ''}</td>
                  </tr>
                ))}
              </DataTable>
            )}
            {(rule.status?.untracked ?? 0) > 0 && (
              <p className="muted">{rule.status?.untracked} more servers are covered but not followed (100 at most).</p>
            )}
          </td>
        </tr>
      )}
    </>
  );
}

const EMPTY_FORM = (namespace: string): AlertForm => ({
  namespace,
  name: '',
  targetKind: 'labels',
  gameServer: '',
  selector: '',
  condition: 'Memory',
  operator: '>',
  threshold: '90',
  for: '5m',
  repeatInterval: '30m',
  webhookUrl: '',
  webhookFormat: 'Generic',
});

/** The common case as a form: one condition, one webhook. Everything else: the YAML editor. */
function NewRuleForm({ namespace, onDone }: { namespace: string; onDone: () => void }) {
  const [f, setF] = useState<AlertForm>(() => EMPTY_FORM(namespace));
  const runner = useRunner();
  const canCreate = useCan('create', 'alertrules', f.namespace || undefined);
  const set = <K extends keyof AlertForm>(k: K, v: AlertForm[K]) => setF((old) => ({ ...old, [k]: v }));
  const isMetric = (METRICS as readonly string[]).includes(f.condition);
  const err = runner.error;
  const fieldErr = (k: keyof AlertForm): string | undefined => {
    if (!(err instanceof ApiError)) return undefined;
    return err.status.details?.causes?.find((c) => c.field && formFieldOf(c.field) === k)?.message;
  };
  const input = (k: keyof AlertForm, label: string, extra: Record<string, unknown> = {}, hint?: string) => (
    <div className="field">
      <label htmlFor={`ar-${k}`}>{label}</label>
      <input
        id={`ar-${k}`}
        value={f[k] as string}
        onChange={(e) => set(k, e.target.value as never)}
        aria-invalid={fieldErr(k) ? true : undefined}
        aria-describedby={fieldErr(k) ? `ar-${k}-error` : undefined}
        {...extra}
      />
      {hint && <span className="hint">{hint}</span>}
      <FieldError id={`ar-${k}`} message={fieldErr(k)} />
    </div>
  );
  const submit = async (ev: FormEvent) => {
    ev.preventDefault();
    const done = await runner.run(async () => {
      const body = alertRuleFromForm(f);
      await api(resourcePath('alertrules', body.metadata.namespace), { method: 'POST', query: { fieldManager: 'panel' }, body });
      return true;
    });
    if (done) onDone();
  };
  return (
    <form className="card" onSubmit={submit} aria-labelledby="new-rule-title" style={{ marginBottom: 16 }}>
      <h2 id="new-rule-title" style={{ marginTop: 0 }}>
        New alert rule
      </h2>
      <ErrorAlert error={err} />
      <div className="form-grid">
        {input('namespace', 'Namespace', { required: true })}
        {input('name', 'Name', { required: true, autoComplete: 'off' })}
      </div>
      <fieldset>
        <legend>Watches</legend>
        <div className="radio-row">
          <label>
            <input type="radio" name="ar-target" checked={f.targetKind === 'labels'} onChange={() => set('targetKind', 'labels')} />
            Servers by label (empty: every server)
          </label>
          <label>
            <input type="radio" name="ar-target" checked={f.targetKind === 'server'} onChange={() => set('targetKind', 'server')} />
            One server
          </label>
        </div>
        {f.targetKind === 'server'
          ? input('gameServer', 'Game server name', { required: true })
          : input('selector', 'Labels', { placeholder: 'game=minecraft' }, 'key=value, separated by commas')}
      </fieldset>
      <fieldset>
        <legend>Condition</legend>
        <div className="form-grid">
          <div className="field">
            <label htmlFor="ar-condition">Metric or event</label>
            <select id="ar-condition" value={f.condition} onChange={(e) => set('condition', e.target.value)}>
              <optgroup label="Metrics">
                {METRICS.map((m) => (
                  <option key={m}>{m}</option>
                ))}
              </optgroup>
              <optgroup label="Events">
                {EVENTS.map((m) => (
                  <option key={m}>{m}</option>
                ))}
              </optgroup>
            </select>
            <FieldError id="ar-condition" message={fieldErr('condition')} />
          </div>
          {isMetric && (
            <>
              <div className="field">
                <label htmlFor="ar-operator">Operator</label>
                <select id="ar-operator" value={f.operator} onChange={(e) => set('operator', e.target.value as '>' | '<')}>
                  <option value=">">above (&gt;)</option>
                  <option value="<">below (&lt;)</option>
                </select>
              </div>
              {input(
                'threshold',
                f.condition === 'Network' ? 'Threshold (bytes per second)' : 'Threshold (percent)',
                { type: 'number', min: 0, max: f.condition === 'Network' ? undefined : 100, step: 'any', required: true },
              )}
            </>
          )}
          {input('for', 'For', { placeholder: '5m' }, 'how long it must hold before it fires')}
          {input('repeatInterval', 'Remind every', { placeholder: '30m' }, '0s: no reminders')}
        </div>
      </fieldset>
      <fieldset>
        <legend>Notify</legend>
        <div className="form-grid">
          {input('webhookUrl', 'Webhook URL', { type: 'url', placeholder: 'https://…' }, 'optional')}
          <div className="field">
            <label htmlFor="ar-format">Format</label>
            <select id="ar-format" value={f.webhookFormat} onChange={(e) => set('webhookFormat', e.target.value)}>
              {FORMATS.map((m) => (
                <option key={m}>{m}</option>
              ))}
            </select>
          </div>
        </div>
      </fieldset>
      <div className="toolbar">
        <button type="submit" className="primary" disabled={runner.busy || canCreate === false}>
          Create alert rule
        </button>
        <button type="button" onClick={onDone}>
          Cancel
        </button>
        {canCreate === false && <span className="muted">You may not create alert rules in {f.namespace}.</span>}
      </div>
    </form>
  );
}

export function AlertRules() {
  const scope = useNamespaceScope('alertrules');
  const listNs = scope.all ? undefined : scope.ns;
  const ready = scope.all !== undefined && (scope.all || !!scope.ns);
  const list = useLiveList<AlertRule>('alertrules', listNs, {}, ready);
  const createNs = listNs ?? 'default';
  const canCreate = useCan('create', 'alertrules', createNs);
  const [creating, setCreating] = useState(false);
  const rows = useMemo(() => [...list.items].sort((a, b) => keyOf(a).localeCompare(keyOf(b))), [list.items]);
  const firing = rows.filter((r) => ruleState(r.status).word === 'Firing').length;

  return (
    <section aria-labelledby="ar-title">
      <ListToolbar
        id="ar-title"
        title="Alert rules"
        loading={list.isLoading}
        count={`${rows.length} rules, ${firing} firing`}
      >
        {scope.all === false && <NamespaceField id="ar-ns" label="Show namespace" value={scope.ns} onChange={scope.setNs} />}
        {canCreate && !creating && (
          <button type="button" className="primary" onClick={() => setCreating(true)}>
            New alert rule
          </button>
        )}
        {canCreate && (
          <Link href={`/yaml/alertrules/${encodeURIComponent(createNs)}/new`} className="button">
            New in YAML
          </Link>
        )}
      </ListToolbar>
      {creating && <NewRuleForm namespace={createNs} onDone={() => setCreating(false)} />}
      <ErrorAlert error={list.error} />
      <DataTable
        label="Alert rules"
        columns={['Name', 'Namespace', 'Watches', 'Condition', 'State', 'Last fired', 'Actions']}
        empty={!list.isLoading && rows.length === 0 ? <>No alert rule{listNs ? ` in ${listNs}` : ''}.</> : null}
      >
        {rows.map((r) => (
          <RuleRow key={keyOf(r)} rule={r} />
        ))}
      </DataTable>
    </section>
  );
}

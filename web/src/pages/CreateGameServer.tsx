// A new GameServer from a Template: namespace, name, Template, image, limits, ports and the
// Template's variables (defaults filled in). As the user types, the browser checks what it can
// and after 500 ms of quiet the API checks the whole object with a dry-run create; its causes
// are shown next to their fields. Create navigates to the new server's page.

import { useEffect, useMemo, useState, type FormEvent } from 'react';
import { Link, useLocation, useSearch } from 'wouter';

import { api, ApiError, resourcePath } from '../api/client';
import { useCan, useLiveList } from '../api/hooks';
import type { GameServer, PortSpec, Template } from '../api/types';
import { buildGameServer, causeMap, causesUnder, dnsLabelError, templateDefaults } from '../lib/newServer';
import { causesByVariable, variablesForm } from '../lib/variablesForm';
import { VariableFields, fieldError, useQuietRun } from './gameserver/VariableFields';
import './gameserver/variables.css';
import './createGameServer.css';

const PROTOCOLS = ['TCP', 'UDP', 'TCPUDP'];

function FieldError({ id, messages }: { id: string; messages: string[] }) {
  if (!messages.length) return null;
  return (
    <span className="error" id={id} role="alert">
      {messages.join('; ')}
    </span>
  );
}

export default function CreateGameServer() {
  const search = useSearch();
  const [, navigate] = useLocation();
  const [namespace, setNamespace] = useState(() => new URLSearchParams(search).get('ns') || 'default');
  const [name, setName] = useState('');
  const [nameTouched, setNameTouched] = useState(false);
  const [templateName, setTemplateName] = useState('');
  const [image, setImage] = useState('');
  const [cpu, setCpu] = useState('');
  const [memory, setMemory] = useState('');
  const [disk, setDisk] = useState('');
  const [port, setPort] = useState('');
  const [protocol, setProtocol] = useState('TCP');
  const [edits, setEdits] = useState<Record<string, string>>({});
  const [causes, setCauses] = useState<Map<string, string[]>>(new Map());
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);

  const ns = namespace.trim();
  const canCreate = useCan('create', 'gameservers', ns || undefined);
  const operator = useCan('update', 'templates') === true;
  const templates = useLiveList<Template>('templates');
  const sorted = useMemo(
    () => [...templates.items].sort((a, b) => a.metadata.name.localeCompare(b.metadata.name)),
    [templates.items],
  );
  const template = templateName ? templates.byKey.get(templateName) : undefined;
  const defaults = useMemo(() => templateDefaults(template), [template]);

  // a Template chosen: its defaults fill the form
  useEffect(() => {
    setImage(defaults.images[0]?.image ?? '');
    setCpu(defaults.resources.cpu ?? '');
    setMemory(defaults.resources.memory ?? '');
    setDisk(defaults.resources.disk ?? '');
    setEdits({});
    setCauses(new Map());
    // only when another Template is chosen, not when the same one changes under the form
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [templateName, template === undefined]);

  const fields = useMemo(() => variablesForm(template?.spec?.variables, undefined, operator), [template, operator]);
  const values = useMemo(() => {
    const v: Record<string, string> = {};
    for (const f of fields) v[f.name] = f.name in edits ? edits[f.name] : f.value;
    return v;
  }, [fields, edits]);
  const varDefaults = useMemo(() => Object.fromEntries(fields.map((f) => [f.name, f.default])), [fields]);

  const ports: PortSpec[] = useMemo(() => {
    if (defaults.ports.length) return defaults.ports;
    const n = Number(port);
    return port.trim() && Number.isInteger(n) ? [{ name: 'game', containerPort: n, protocol }] : [];
  }, [defaults.ports, port, protocol]);

  const object: GameServer = useMemo(
    () =>
      buildGameServer(
        { namespace: ns, name: name.trim(), template: templateName, image, cpu, memory, disk, ports, variables: values, defaults: varDefaults },
        template,
      ),
    [ns, name, templateName, image, cpu, memory, disk, ports, values, varDefaults, template],
  );

  const nameError = dnsLabelError(name.trim());
  const portError = !defaults.ports.length && port.trim() && !/^[0-9]+$/.test(port.trim()) ? 'must be a port number' : '';
  const localVarErrors = fields.filter((f) => !f.hidden && fieldError(f, values[f.name], new Map()));
  const ready = !!ns && !nameError && !!templateName && !!template && canCreate === true;

  const takeError = (e: unknown) => {
    if (e instanceof ApiError) {
      const m = causeMap(e.status.details?.causes);
      if (e.code === 409 && e.reason === 'AlreadyExists') {
        m.set('metadata.name', [e.message]);
        setCauses(m);
        return '';
      }
      setCauses(m);
      return e.status.details?.causes?.length ? '' : e.message;
    }
    return e instanceof Error ? e.message : String(e);
  };

  const checking = useQuietRun(JSON.stringify(object), ready, async (signal) => {
    try {
      await api(resourcePath('gameservers', ns), { method: 'POST', body: object, query: { dryRun: 'All' }, signal });
      if (signal.aborted) return;
      setCauses(new Map());
      setError('');
    } catch (e) {
      if (signal.aborted || (e instanceof DOMException && e.name === 'AbortError')) return;
      setError(takeError(e));
    }
  });

  const submit = async (ev: FormEvent) => {
    ev.preventDefault();
    setNameTouched(true);
    if (!ready || localVarErrors.length || portError) return;
    setBusy(true);
    setError('');
    try {
      const created = await api<GameServer>(resourcePath('gameservers', ns), { method: 'POST', body: object });
      navigate(`/gameservers/${encodeURIComponent(created?.metadata?.namespace ?? ns)}/${encodeURIComponent(created?.metadata?.name ?? name.trim())}`);
    } catch (e) {
      setError(takeError(e));
      setBusy(false);
    }
  };

  const under = (p: string) => causesUnder(causes, p);
  const varCauses = useMemo(() => causesByVariable([...causes].flatMap(([field, msgs]) => msgs.map((message) => ({ field, message })))), [causes]);
  // causes no field below shows
  const shownPrefixes = ['metadata.name', 'metadata.namespace', 'spec.template', 'spec.image', 'spec.resources.cpu', 'spec.resources.memory', 'spec.resources.disk', 'spec.ports', 'spec.variables'];
  const otherCauses = [...causes].filter(([k]) => !shownPrefixes.some((p) => k === p || k.startsWith(`${p}.`) || k.startsWith(`${p}[`)));

  const describe = (id: string, hint: boolean, errs: string[]) =>
    [hint ? `${id}-hint` : '', errs.length ? `${id}-error` : ''].filter(Boolean).join(' ') || undefined;

  const nameErrs = [...(nameTouched && nameError ? [nameError] : []), ...under('metadata.name')];
  const nsErrs = [...(!ns ? ['is required'] : []), ...under('metadata.namespace')];
  const tplErrs = under('spec.template');
  const imageErrs = under('spec.image');
  const cpuErrs = under('spec.resources.cpu');
  const memErrs = under('spec.resources.memory');
  const diskErrs = under('spec.resources.disk');
  const portErrs = [...(portError ? [portError] : []), ...under('spec.ports')];

  return (
    <section aria-labelledby="new-gs-title" className="new-gs">
      <div className="toolbar">
        <h1 id="new-gs-title" style={{ margin: 0 }}>
          New game server
        </h1>
        <span className="spacer" />
        <Link href="/">Back to game servers</Link>
      </div>
      {canCreate === false && (
        <div className="notice" role="status">
          You may not create game servers in the namespace <span className="mono">{ns || '(none)'}</span>.
        </div>
      )}
      <form className="card" onSubmit={submit} noValidate aria-describedby={error ? 'new-gs-error' : undefined}>
        <h2 style={{ marginTop: 0 }}>Server</h2>
        <div className="grid-2">
          <div className="field">
            <label htmlFor="gs-namespace">Namespace</label>
            <input
              id="gs-namespace"
              value={namespace}
              required
              spellCheck={false}
              aria-invalid={nsErrs.length ? true : undefined}
              aria-describedby={describe('gs-namespace', false, nsErrs)}
              onChange={(e) => setNamespace(e.target.value)}
            />
            <FieldError id="gs-namespace-error" messages={nsErrs} />
          </div>
          <div className="field">
            <label htmlFor="gs-name">Name</label>
            <span className="hint" id="gs-name-hint">
              Lowercase letters, digits and "-"; at most 63 characters.
            </span>
            <input
              id="gs-name"
              value={name}
              required
              spellCheck={false}
              autoComplete="off"
              aria-invalid={nameErrs.length ? true : undefined}
              aria-describedby={describe('gs-name', true, nameErrs)}
              onChange={(e) => {
                setName(e.target.value);
                setNameTouched(true);
              }}
            />
            <FieldError id="gs-name-error" messages={nameErrs} />
          </div>
        </div>
        <div className="field">
          <label htmlFor="gs-template">Template</label>
          {(template?.spec?.description || defaults.description) && (
            <span className="hint" id="gs-template-hint">
              {defaults.description}
            </span>
          )}
          <select
            id="gs-template"
            value={templateName}
            required
            aria-invalid={tplErrs.length ? true : undefined}
            aria-describedby={describe('gs-template', !!defaults.description, tplErrs)}
            onChange={(e) => setTemplateName(e.target.value)}
          >
            <option value="">{templates.isLoading ? 'Loading templates…' : 'Choose a template'}</option>
            {sorted.map((t) => (
              <option key={t.metadata.name} value={t.metadata.name}>
                {t.metadata.name}
              </option>
            ))}
          </select>
          <FieldError id="gs-template-error" messages={tplErrs} />
          {templates.error != null && (
            <span className="error" role="alert">
              The templates could not be listed: {templates.error instanceof Error ? templates.error.message : String(templates.error)}
            </span>
          )}
        </div>
        {template && (
          <>
            {defaults.images.length > 1 ? (
              <div className="field">
                <label htmlFor="gs-image">Image</label>
                <select
                  id="gs-image"
                  value={image}
                  aria-invalid={imageErrs.length ? true : undefined}
                  aria-describedby={describe('gs-image', false, imageErrs)}
                  onChange={(e) => setImage(e.target.value)}
                >
                  {defaults.images.map((i) => (
                    <option key={i.image} value={i.image}>
                      {i.name && i.name !== i.image ? `${i.name} (${i.image})` : i.image}
                    </option>
                  ))}
                </select>
                <FieldError id="gs-image-error" messages={imageErrs} />
              </div>
            ) : (
              <p>
                <span className="muted">Image: </span>
                <span className="mono">{defaults.images[0]?.image ?? 'none'}</span>
              </p>
            )}
            <h2>Limits</h2>
            <div className="new-gs-limits">
              <div className="field">
                <label htmlFor="gs-memory">Memory</label>
                <span className="hint" id="gs-memory-hint">
                  e.g. 512Mi, 2Gi
                </span>
                <input
                  id="gs-memory"
                  value={memory}
                  spellCheck={false}
                  aria-invalid={memErrs.length ? true : undefined}
                  aria-describedby={describe('gs-memory', true, memErrs)}
                  onChange={(e) => setMemory(e.target.value)}
                />
                <FieldError id="gs-memory-error" messages={memErrs} />
              </div>
              <div className="field">
                <label htmlFor="gs-cpu">CPU</label>
                <span className="hint" id="gs-cpu-hint">
                  cores, e.g. 2 or 500m
                </span>
                <input
                  id="gs-cpu"
                  value={cpu}
                  spellCheck={false}
                  aria-invalid={cpuErrs.length ? true : undefined}
                  aria-describedby={describe('gs-cpu', true, cpuErrs)}
                  onChange={(e) => setCpu(e.target.value)}
                />
                <FieldError id="gs-cpu-error" messages={cpuErrs} />
              </div>
              <div className="field">
                <label htmlFor="gs-disk">Disk</label>
                <span className="hint" id="gs-disk-hint">
                  e.g. 10Gi
                </span>
                <input
                  id="gs-disk"
                  value={disk}
                  spellCheck={false}
                  aria-invalid={diskErrs.length ? true : undefined}
                  aria-describedby={describe('gs-disk', true, diskErrs)}
                  onChange={(e) => setDisk(e.target.value)}
                />
                <FieldError id="gs-disk-error" messages={diskErrs} />
              </div>
            </div>
            <h2>Ports</h2>
            {defaults.ports.length ? (
              <>
                <ul className="new-gs-ports">
                  {defaults.ports.map((p, i) => (
                    <li key={i}>
                      <span className="mono">
                        {p.name ? `${p.name}: ` : ''}
                        {p.containerPort}/{p.protocol ?? 'TCP'}
                      </span>{' '}
                      <span className="muted">({String((p as Record<string, unknown>).policy ?? 'Dynamic')})</span>
                    </li>
                  ))}
                </ul>
                <p className="hint muted">From the Template; the host port is chosen on the node.</p>
                <FieldError id="gs-ports-error" messages={portErrs} />
              </>
            ) : (
              <div className="new-gs-limits">
                <div className="field">
                  <label htmlFor="gs-port">Game port (in the container)</label>
                  <span className="hint" id="gs-port-hint">
                    The Template names none; leave empty for a server without ports.
                  </span>
                  <input
                    id="gs-port"
                    type="number"
                    min={1}
                    max={65535}
                    value={port}
                    aria-invalid={portErrs.length ? true : undefined}
                    aria-describedby={describe('gs-port', true, portErrs)}
                    onChange={(e) => setPort(e.target.value)}
                  />
                  <FieldError id="gs-port-error" messages={portErrs} />
                </div>
                <div className="field">
                  <label htmlFor="gs-protocol">Protocol</label>
                  <select id="gs-protocol" value={protocol} onChange={(e) => setProtocol(e.target.value)}>
                    {PROTOCOLS.map((p) => (
                      <option key={p}>{p}</option>
                    ))}
                  </select>
                </div>
              </div>
            )}
            <h2>Variables</h2>
            {fields.length === 0 ? (
              <p className="muted">The Template has no variables.</p>
            ) : (
              <VariableFields
                fields={fields}
                values={values}
                onChange={(k, v) => setEdits((old) => ({ ...old, [k]: v }))}
                serverErrors={varCauses}
                disabled={busy}
                idPrefix="new-var"
              />
            )}
          </>
        )}
        {otherCauses.length > 0 && (
          <div className="alert" role="alert">
            <ul style={{ margin: 0, paddingLeft: 18 }}>
              {otherCauses.map(([k, msgs]) => (
                <li key={k}>
                  <span className="mono">{k || 'object'}</span>: {msgs.join('; ')}
                </li>
              ))}
            </ul>
          </div>
        )}
        {error && (
          <div className="alert" role="alert" id="new-gs-error">
            {error}
          </div>
        )}
        <div className="toolbar var-actions">
          <button type="submit" className="primary" disabled={busy || !ready}>
            {busy ? 'Creating…' : 'Create game server'}
          </button>
          <span className="muted" aria-live="polite">
            {checking ? 'Checking with the server…' : ''}
          </span>
        </div>
      </form>
    </section>
  );
}

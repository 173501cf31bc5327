// A GameServer's Backups (live from the watch): create, download, restore (a Restore object),
// lock/unlock, delete; and the Restores into this server with their progress.

import { useMemo, useState } from 'react';

import { api, ApiError, resourcePath } from '../../api/client';
import { useCan, useLiveList } from '../../api/hooks';
import type { GameServer, KObject } from '../../api/types';
import { DataTable, ErrorAlert, HIDDEN_ACTIONS, StatusNotice, ListToolbar, DeniedSection } from '../../components/AdminKit';
import { Phase } from '../../components/Phase';
import { lines, nameProblem, newestFirst, restoresInto, stampedName } from '../../lib/jobs';
import { formatBytes } from '../../lib/prometheus';
import { useServerItems } from '../../components/useServerItems';
import { DeleteDialog, Dialog, messageOf } from './files/Dialog';
import { download } from './files/download';
import './files.css';

interface S3 {
  endpoint?: string;
  bucket?: string;
  region?: string;
  prefix?: string;
  pathStyle?: boolean;
  credentials?: string;
}

interface Backup extends KObject {
  spec?: {
    gameServer: string;
    ignore?: string[];
    command?: string | null;
    commandWaitSeconds?: number | null;
    stopServer?: boolean;
    locked?: boolean;
    storage?: { s3?: S3 | null; local?: object | null };
  };
  status?: {
    phase?: string;
    bytesDone?: number | null;
    sizeBytes?: number | null;
    files?: number | null;
    completedAt?: string | null;
    startedAt?: string | null;
    location?: string | null;
    nodeName?: string | null;
    message?: string | null;
  };
}

interface Restore extends KObject {
  spec?: { backup: string; gameServer?: string | null; truncate?: boolean };
  status?: {
    phase?: string;
    step?: string | null;
    message?: string | null;
    startedAt?: string | null;
    completedAt?: string | null;
    files?: number | null;
    bytes?: number | null;
  };
}

const when = (t?: string | null) => (t ? <time dateTime={t}>{new Date(t).toLocaleString()}</time> : '—');

export default function Backups({ gs }: { gs: GameServer }) {
  const { ns, server, canList, canCreate, canPatch, canDelete, list: backups, mine } = useServerItems<Backup>('backups', gs, newestFirst);
  const canDownload = useCan('get', 'backups/download', ns);
  const canRestore = useCan('create', 'restores', ns);
  const canListRestores = useCan('list', 'restores', ns);

  const restores = useLiveList<Restore>('restores', ns, {}, canListRestores === true);
  const byName = useMemo(() => new Map(backups.items.map((b) => [b.metadata.name, b])), [backups.items]);
  const into = useMemo(() => restoresInto(restores.items, byName, server), [restores.items, byName, server]);

  const [creating, setCreating] = useState(false);
  const [restoring, setRestoring] = useState<Backup | null>(null);
  const [deleting, setDeleting] = useState<Backup | null>(null);
  const [error, setError] = useState('');
  const [notice, setNotice] = useState('');
  const [busy, setBusy] = useState('');

  const lock = async (b: Backup, locked: boolean) => {
    setBusy(b.metadata.name);
    setError('');
    try {
      await api(resourcePath('backups', ns, b.metadata.name), {
        method: 'PATCH',
        query: { fieldManager: 'panel' },
        body: { spec: { locked } },
        contentType: 'application/merge-patch+json',
      });
      setNotice(`${b.metadata.name} is ${locked ? 'locked' : 'unlocked'}.`);
    } catch (e) {
      setError(messageOf(e));
    } finally {
      setBusy('');
    }
  };

  const get = async (b: Backup) => {
    setError('');
    try {
      await download(
        resourcePath('backups', ns, b.metadata.name, 'download'),
        {},
        `${b.metadata.name}.tar.zst`,
        b.status?.sizeBytes ?? undefined,
      );
    } catch (e) {
      setError(`Download of ${b.metadata.name} failed: ${messageOf(e)}`);
    }
  };

  if (canList === false) {
    return <DeniedSection id="backups-title" title="Backups" text="You may not see this namespace's backups." />;
  }

  return (
    <section aria-labelledby="backups-title">
      <ListToolbar
        id="backups-title"
        title="Backups"
        level={2}
        loading={backups.isLoading}
        count={`${mine.length}`}
      >
        {canCreate && (
          <button type="button" className="primary" onClick={() => setCreating(true)}>
            Create backup
          </button>
        )}
      </ListToolbar>
      <ErrorAlert error={error} />
      <StatusNotice text={notice} />
      <ErrorAlert error={backups.error} />
      <DataTable
        label={`Backups of ${server}`}
        columns={[
          'Name',
          'Phase',
          'Size',
          { label: 'Created', className: 'col-hide-phone' },
          { label: 'Completed', className: 'col-hide-phone' },
          { label: 'Storage', className: 'col-hide-phone' },
          HIDDEN_ACTIONS,
        ]}
        empty={!backups.isLoading && mine.length === 0 ? <>No backups of {server} yet.</> : null}
      >
        {mine.map((b) => {
          const phase = b.status?.phase ?? 'Pending';
          const done = phase === 'Completed';
          const locked = b.spec?.locked === true;
          const n = b.metadata.name;
          return (
            <tr key={n}>
              <td>
                <span className="mono">{n}</span>{' '}
                {locked && <span className="job-badge warn">locked</span>}
                {b.metadata.deletionTimestamp && <span className="job-badge bad">deleting</span>}
              </td>
              <td>
                <Phase phase={phase} />
                {phase === 'Running' && b.status?.bytesDone != null && (
                  <div className="job-row-sub">{formatBytes(b.status.bytesDone)} so far</div>
                )}
                {b.status?.message && <div className="job-row-sub">{b.status.message}</div>}
              </td>
              <td>
                {b.status?.sizeBytes != null ? formatBytes(b.status.sizeBytes) : '—'}
                {b.status?.files != null && <div className="job-row-sub">{b.status.files} files</div>}
              </td>
              <td className="col-hide-phone">{when(b.metadata.creationTimestamp)}</td>
              <td className="col-hide-phone">{when(b.status?.completedAt)}</td>
              <td className="col-hide-phone mono">
                {b.spec?.storage?.s3 ? (b.status?.location ?? `s3://${b.spec.storage.s3.bucket}`) : `node ${b.status?.nodeName ?? '—'}`}
              </td>
              <td>
                <div className="row-actions">
                  {done && canDownload && (
                    <button type="button" onClick={() => void get(b)} aria-label={`Download ${n}`}>
                      Download
                    </button>
                  )}
                  {done && canRestore && (
                    <button type="button" onClick={() => setRestoring(b)} aria-label={`Restore ${n}`}>
                      Restore
                    </button>
                  )}
                  {canPatch && (
                    <button
                      type="button"
                      disabled={busy === n}
                      onClick={() => void lock(b, !locked)}
                      aria-label={`${locked ? 'Unlock' : 'Lock'} ${n}`}
                    >
                      {locked ? 'Unlock' : 'Lock'}
                    </button>
                  )}
                  {canDelete && (
                    <button type="button" className="danger" onClick={() => setDeleting(b)} aria-label={`Delete ${n}`}>
                      Delete
                    </button>
                  )}
                </div>
              </td>
            </tr>
          );
        })}
      </DataTable>

      {canListRestores && into.length > 0 && (
        <>
          <h3>Restores</h3>
          <div className="table-wrap">
            <table aria-label={`Restores into ${server}`}>
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Backup</th>
                  <th scope="col">Phase</th>
                  <th scope="col" className="col-hide-phone">
                    Started
                  </th>
                  <th scope="col" className="col-hide-phone">
                    Completed
                  </th>
                </tr>
              </thead>
              <tbody>
                {into.map((r) => (
                  <tr key={r.metadata.name}>
                    <td className="mono">
                      {r.metadata.name} {r.spec?.truncate && <span className="job-badge">truncate</span>}
                    </td>
                    <td className="mono">{r.spec?.backup}</td>
                    <td>
                      <Phase phase={r.status?.phase ?? 'Pending'} />
                      {r.status?.step && <div className="job-row-sub">{r.status.step}</div>}
                      {r.status?.message && <div className="job-row-sub">{r.status.message}</div>}
                      {r.status?.files != null && (
                        <div className="job-row-sub">
                          {r.status.files} files{r.status.bytes != null ? `, ${formatBytes(r.status.bytes)}` : ''}
                        </div>
                      )}
                    </td>
                    <td className="col-hide-phone">{when(r.status?.startedAt)}</td>
                    <td className="col-hide-phone">{when(r.status?.completedAt)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </>
      )}

      {creating && (
        <CreateBackup
          ns={ns}
          server={server}
          onClose={() => setCreating(false)}
          onDone={(n) => {
            setCreating(false);
            setNotice(`Backup ${n} created; it runs now.`);
          }}
        />
      )}
      {restoring && (
        <RestoreDialog
          ns={ns}
          server={server}
          backup={restoring}
          onClose={() => setRestoring(null)}
          onDone={(n) => {
            setRestoring(null);
            setNotice(`Restore ${n} created; its progress is below.`);
          }}
        />
      )}
      {deleting && (
        <DeleteBackup
          ns={ns}
          backup={deleting}
          onClose={() => setDeleting(null)}
          onDone={() => {
            setNotice(`${deleting.metadata.name} is being deleted.`);
            setDeleting(null);
          }}
        />
      )}
    </section>
  );
}

function FieldError({ e, field }: { e: unknown; field: string }) {
  const m = e instanceof ApiError ? e.causeFor(field) : undefined;
  return m ? <span className="error">{m}</span> : null;
}

function CreateBackup({ ns, server, onClose, onDone }: { ns: string; server: string; onClose: () => void; onDone: (name: string) => void }) {
  const [name, setName] = useState(() => stampedName(server));
  const [ignore, setIgnore] = useState('');
  const [command, setCommand] = useState('');
  const [wait, setWait] = useState('');
  const [stop, setStop] = useState(false);
  const [locked, setLocked] = useState(false);
  const [useS3, setUseS3] = useState(false);
  const [s3, setS3] = useState<S3>({ region: 'us-east-1', pathStyle: false });
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState<unknown>(null);
  const bad = nameProblem(name);

  const submit = async () => {
    if (bad) return;
    setBusy(true);
    setErr(null);
    const spec: Record<string, unknown> = { gameServer: server, stopServer: stop, locked };
    const ig = lines(ignore);
    if (ig.length) spec.ignore = ig;
    if (command.trim()) spec.command = command.trim();
    if (command.trim() && wait.trim()) spec.commandWaitSeconds = Number(wait);
    if (useS3) {
      const t: S3 = {};
      for (const [k, v] of Object.entries(s3)) if (v !== '' && v !== undefined) (t as Record<string, unknown>)[k] = v;
      spec.storage = { s3: t };
    }
    try {
      await api(resourcePath('backups', ns), {
        method: 'POST',
        query: { fieldManager: 'panel' },
        body: { apiVersion: 'catalyst.dev/v1alpha1', kind: 'Backup', metadata: { name, namespace: ns }, spec },
      });
      onDone(name);
    } catch (e) {
      setErr(e);
    } finally {
      setBusy(false);
    }
  };
  const s3Field = (k: keyof S3, label: string, hint?: string) => (
    <div className="field">
      <label htmlFor={`bk-s3-${k}`}>{label}</label>
      <input
        id={`bk-s3-${k}`}
        value={(s3[k] as string | undefined) ?? ''}
        onChange={(e) => setS3((o) => ({ ...o, [k]: e.target.value }))}
      />
      {hint && <span className="hint">{hint}</span>}
      <FieldError e={err} field={`spec.storage.s3.${k}`} />
    </div>
  );
  return (
    <Dialog title={`Create a backup of ${server}`} onClose={onClose} onSubmit={submit} submitLabel="Create backup" busy={busy} error={err ? messageOf(err) : undefined}>
      <div className="field">
        <label htmlFor="bk-name">Name</label>
        <input id="bk-name" value={name} onChange={(e) => setName(e.target.value)} aria-invalid={!!bad} />
        {bad && <span className="error">{bad}</span>}
        <FieldError e={err} field="metadata.name" />
      </div>
      <div className="field">
        <label htmlFor="bk-ignore">Leave out</label>
        <textarea id="bk-ignore" rows={3} className="mono" value={ignore} onChange={(e) => setIgnore(e.target.value)} aria-describedby="bk-ignore-hint" />
        <span id="bk-ignore-hint" className="hint">
          One pattern a line, gitignore syntax (<code>logs/</code>, <code>*.tmp</code>), besides the server's .catalystignore.
        </span>
        <FieldError e={err} field="spec.ignore" />
      </div>
      <div className="field">
        <label htmlFor="bk-command">Console command first (optional)</label>
        <input id="bk-command" className="mono" placeholder="save-all" value={command} onChange={(e) => setCommand(e.target.value)} />
        <FieldError e={err} field="spec.command" />
      </div>
      {command.trim() && (
        <div className="field">
          <label htmlFor="bk-wait">Seconds to wait after it</label>
          <input id="bk-wait" type="number" min={0} placeholder="5" value={wait} onChange={(e) => setWait(e.target.value)} />
          <FieldError e={err} field="spec.commandWaitSeconds" />
        </div>
      )}
      <label className="fm-check">
        <input type="checkbox" checked={stop} onChange={(e) => setStop(e.target.checked)} /> Stop the server during the backup
        (started again after)
      </label>
      <label className="fm-check">
        <input type="checkbox" checked={locked} onChange={(e) => setLocked(e.target.checked)} /> Lock it (kept from deletion and
        retention)
      </label>
      <label className="fm-check">
        <input type="checkbox" checked={useS3} onChange={(e) => setUseS3(e.target.checked)} /> Keep it in an S3 bucket instead of on
        the node
      </label>
      {useS3 && (
        <fieldset>
          <legend>S3 bucket</legend>
          {s3Field('endpoint', 'Endpoint', 'https://s3.example.com')}
          {s3Field('bucket', 'Bucket')}
          {s3Field('region', 'Region')}
          {s3Field('prefix', 'Key prefix (optional)')}
          {s3Field('credentials', 'Credentials Secret', 'A Secret in this namespace with accessKeyId and secretAccessKey')}
          <label className="fm-check">
            <input type="checkbox" checked={!!s3.pathStyle} onChange={(e) => setS3((o) => ({ ...o, pathStyle: e.target.checked }))} />{' '}
            Path-style addressing (MinIO, an IP address)
          </label>
        </fieldset>
      )}
    </Dialog>
  );
}

function RestoreDialog({
  ns,
  server,
  backup,
  onClose,
  onDone,
}: {
  ns: string;
  server: string;
  backup: Backup;
  onClose: () => void;
  onDone: (name: string) => void;
}) {
  const [truncate, setTruncate] = useState(false);
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState('');
  const submit = async () => {
    setBusy(true);
    setErr('');
    const name = stampedName(`${backup.metadata.name.slice(0, 24)}-restore`);
    try {
      await api(resourcePath('restores', ns), {
        method: 'POST',
        query: { fieldManager: 'panel' },
        body: {
          apiVersion: 'catalyst.dev/v1alpha1',
          kind: 'Restore',
          metadata: { name, namespace: ns },
          spec: { backup: backup.metadata.name, gameServer: server, truncate },
        },
      });
      onDone(name);
    } catch (e) {
      setErr(messageOf(e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <Dialog title={`Restore ${backup.metadata.name}?`} onClose={onClose} onSubmit={submit} submitLabel="Restore" danger busy={busy} error={err}>
      <p>
        {server} is stopped if it runs, the backup's files are put back into its data directory, and it is started again if it
        was running. Files the backup holds replace the current ones.
      </p>
      <label className="fm-check">
        <input type="checkbox" checked={truncate} onChange={(e) => setTruncate(e.target.checked)} aria-describedby="rs-trunc-hint" />{' '}
        Delete every current file first (truncate)
      </label>
      <p id="rs-trunc-hint" className="muted">
        {truncate
          ? 'Truncate: the data directory ends up exactly as the backup holds it; files made since the backup are deleted.'
          : 'Without truncate, files made since the backup stay beside the restored ones.'}
      </p>
    </Dialog>
  );
}

function DeleteBackup({ ns, backup, onClose, onDone }: { ns: string; backup: Backup; onClose: () => void; onDone: () => void }) {
  // a locked backup answers 409 with the reason, shown in the dialog
  return (
    <DeleteDialog plural="backups" ns={ns} name={backup.metadata.name} onClose={onClose} onDone={onDone}>
      <p>Its archive is removed from {backup.spec?.storage?.s3 ? 'the bucket' : 'the node'}. This cannot be undone.</p>
      {backup.spec?.locked && <p className="notice">This backup is locked: unlock it first, or the API refuses the deletion.</p>}
    </DeleteDialog>
  );
}

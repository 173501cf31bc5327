import { Fragment, useMemo, useState } from 'react';
import { Link } from 'wouter';

import { api, resourcePath } from '../api/client';
import { useCan, useLiveList } from '../api/hooks';
import type { GameServer } from '../api/types';
import { Ago, ErrorAlert, useRunner, DataTable, ListToolbar } from '../components/AdminKit';
import { countByNode, readiness, resourceRows, type Node } from '../lib/nodes';
import '../components/AdminKit.css';

function ReadyBadge({ node }: { node: Node }) {
  const r = readiness(node);
  return <span className={`badge ${r === 'Ready' ? 'ok' : r === 'NotReady' ? 'danger' : 'warn'}`}>{r}</span>;
}

function Usage({ label, used }: { label: string; used?: number }) {
  return (
    <>
      {used !== undefined && (
        <span className={`bar${used >= 90 ? ' full' : ''}`} aria-hidden="true">
          <span style={{ width: `${Math.min(used, 100)}%` }} />
        </span>
      )}
      {label}
      {used !== undefined && <span className="muted"> ({used}%)</span>}
    </>
  );
}

/** A node's details: resources, conditions, versions, addresses. */
function NodeDetails({ node }: { node: Node }) {
  const rows = resourceRows(node);
  const s = node.status ?? {};
  return (
    <div className="stack" style={{ padding: '8px 0' }}>
      <DataTable
        label={`Resources of ${node.metadata.name}`}
        columns={['Resource', 'Capacity', 'Allocatable', 'Allocated']}
      >
        {rows.map((r) => (
          <tr key={r.resource}>
            <th scope="row">{r.resource}</th>
            <td>{r.capacity}</td>
            <td>{r.allocatable}</td>
            <td>
              <Usage label={r.allocated} used={r.used} />
            </td>
          </tr>
        ))}
      </DataTable>
      <DataTable
        label={`Conditions of ${node.metadata.name}`}
        columns={['Condition', 'Status', 'Reason', 'Message', 'Since']}
        empty={(s.conditions ?? []).length === 0 ? 'No conditions reported yet.' : null}
      >
        {(s.conditions ?? []).map((c) => (
          <tr key={c.type}>
            <th scope="row">{c.type}</th>
            <td>{c.status}</td>
            <td>{c.reason ?? '—'}</td>
            <td style={{ whiteSpace: 'normal' }}>{c.message ?? ''}</td>
            <td>
              <Ago iso={c.lastTransitionTime} />
            </td>
          </tr>
        ))}
      </DataTable>
      <dl className="facts">
        <dt>Addresses</dt>
        <dd className="mono">{(s.addresses ?? []).join(', ') || '—'}</dd>
        <dt>Public address</dt>
        <dd className="mono">{node.spec?.address ?? '(first reported address)'}</dd>
        {Object.entries(s.versions ?? {}).map(([k, v]) => (
          <Fragment key={k}>
            <dt>{k}</dt>
            <dd className="mono">{v}</dd>
          </Fragment>
        ))}
      </dl>
    </div>
  );
}

function NodeRow({ node, servers, canPatch }: { node: Node; servers?: number; canPatch: boolean }) {
  const [open, setOpen] = useState(false);
  const runner = useRunner();
  const name = node.metadata.name;
  const cordoned = node.spec?.unschedulable === true;
  const rows = resourceRows(node);
  const cpu = rows[0];
  const mem = rows[1];
  const disk = rows[2];
  const setCordon = (unschedulable: boolean) =>
    runner.run(() =>
      api(resourcePath('nodes', undefined, name), {
        method: 'PATCH',
        query: { fieldManager: 'panel' },
        contentType: 'application/merge-patch+json',
        body: JSON.stringify({ spec: { unschedulable } }),
      }),
    );
  return (
    <>
      <tr data-testid={`node-row-${name}`}>
        <td>
          <button
            type="button"
            aria-expanded={open}
            aria-controls={`node-details-${name}`}
            onClick={() => setOpen(!open)}
            aria-label={`${open ? 'Hide' : 'Show'} details of ${name}`}
          >
            {open ? '▾' : '▸'}
          </button>{' '}
          <strong>{name}</strong>
        </td>
        <td>
          <ReadyBadge node={node} />
        </td>
        <td>{cordoned ? <span className="badge warn">Cordoned</span> : <span className="muted">Schedulable</span>}</td>
        <td>
          <Usage label={`${cpu.allocated} / ${cpu.allocatable}`} used={cpu.used} />
        </td>
        <td>
          <Usage label={`${mem.allocated} / ${mem.allocatable}`} used={mem.used} />
        </td>
        <td>
          <Usage label={`${disk.allocated} / ${disk.allocatable}`} used={disk.used} />
        </td>
        <td>{servers ?? '—'}</td>
        <td>
          <Ago iso={node.status?.lastHeartbeatTime} />
        </td>
        <td className="actions-cell">
          <div className="actions">
            {canPatch && (
              <button type="button" disabled={runner.busy} onClick={() => void setCordon(!cordoned)}>
                {cordoned ? `Uncordon ${name}` : `Cordon ${name}`}
              </button>
            )}
            <Link href={`/yaml/nodes/${encodeURIComponent(name)}`}>Edit YAML</Link>
          </div>
          <ErrorAlert error={runner.error} />
        </td>
      </tr>
      {open && (
        <tr className="detail-row" id={`node-details-${name}`}>
          <td colSpan={9}>
            <NodeDetails node={node} />
          </td>
        </tr>
      )}
    </>
  );
}

export function Nodes() {
  const canList = useCan('list', 'nodes');
  const canPatch = useCan('patch', 'nodes');
  const canCount = useCan('list', 'gameservers');
  const nodes = useLiveList<Node>('nodes', undefined, {}, canList === true);
  // one watch of every server, counted per node, only when the user may list them all
  const servers = useLiveList<GameServer>('gameservers', undefined, {}, canCount === true);
  const counts = useMemo(() => countByNode(servers.items), [servers.items]);
  const rows = useMemo(() => [...nodes.items].sort((a, b) => a.metadata.name.localeCompare(b.metadata.name)), [nodes.items]);
  const ready = rows.filter((n) => readiness(n) === 'Ready').length;

  return (
    <section aria-labelledby="nodes-title">
      <ListToolbar
        id="nodes-title"
        title="Nodes"
        loading={nodes.isLoading}
        count={`${ready} of ${rows.length} ready`}
      />
      {canList === false && <p className="notice">You may not list nodes.</p>}
      <ErrorAlert error={nodes.error} />
      {canList && (
        <DataTable
          label="Nodes"
          columns={['Name', 'Ready', 'Scheduling', 'CPU allocated', 'Memory allocated', 'Disk allocated', 'Servers', 'Last heartbeat', 'Actions']}
          empty={!nodes.isLoading && rows.length === 0 ? 'No node has joined yet.' : null}
        >
          {rows.map((n) => (
            <NodeRow
              key={n.metadata.name}
              node={n}
              canPatch={canPatch === true}
              servers={canCount ? (counts.get(n.metadata.name) ?? 0) : undefined}
            />
          ))}
        </DataTable>
      )}
    </section>
  );
}

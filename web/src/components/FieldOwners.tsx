// "Field owners": one row per metadata.managedFields entry (manager, operation, time, fields).
import './YamlEditor.css';

import { useId } from 'react';

import type { KObject } from '../api/types';
import { ownedPaths } from '../lib/fieldOwners';

export function FieldOwners({ obj }: { obj: KObject }) {
  const id = useId();
  const entries = obj.metadata.managedFields ?? [];
  return (
    <section aria-labelledby={id} className="field-owners">
      <h2 id={id}>Field owners</h2>
      {entries.length === 0 ? (
        <p className="muted">No manager has recorded fields of this object.</p>
      ) : (
        <div className="table-wrap">
          <table data-testid="field-owners">
            <thead>
              <tr>
                <th scope="col">Manager</th>
                <th scope="col">Operation</th>
                <th scope="col">Time</th>
                <th scope="col">Fields</th>
              </tr>
            </thead>
            <tbody>
              {entries.map((e, i) => {
                const fields = ownedPaths(e);
                return (
                  <tr key={`${e.manager}/${e.operation}/${i}`}>
                    <td>{e.manager}</td>
                    <td>{e.operation}</td>
                    <td>{e.time ? <time dateTime={e.time}>{new Date(e.time).toLocaleString()}</time> : '—'}</td>
                    <td className="field-owners-fields">
                      {fields.length <= 6 ? (
                        <span className="mono">{fields.join(', ')}</span>
                      ) : (
                        <details>
                          <summary>
                            <span className="mono">{fields.slice(0, 3).join(', ')}</span> and {fields.length - 3} more
                          </summary>
                          <ul className="mono">
                            {fields.map((f) => (
                              <li key={f}>{f}</li>
                            ))}
                          </ul>
                        </details>
                      )}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

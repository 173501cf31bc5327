// The inputs of a Template's variables (from lib/variablesForm), shared by a server's Variables
// tab and the create form: each with its label (the displayName), the variable's name in mono,
// its description as a hint, and its error (the browser's own check first, else the server's).

import { useEffect, useRef, useState } from 'react';

import { check } from '../../lib/rules';
import type { FieldDescriptor } from '../../lib/variablesForm';
import './variables.css';

export interface VariableFieldsProps {
  fields: FieldDescriptor[];
  /** the value shown for each variable (the user's edit, else the field's value) */
  values: Record<string, string>;
  onChange: (name: string, value: string) => void;
  /** the server's messages by variable (422 causes of the last dry run or save) */
  serverErrors: Map<string, string[]>;
  /** notes that are not errors (e.g. who owns a field an apply would take) */
  notes?: Map<string, string[]>;
  disabled: boolean;
  idPrefix: string;
}

/** The message to show for a field: the local check's, else the server's. */
export function fieldError(f: FieldDescriptor, value: string, serverErrors: Map<string, string[]>): string | undefined {
  const local = check(value, f.rules);
  if (local) return local;
  const server = serverErrors.get(f.name);
  return server?.length ? server.join('; ') : undefined;
}

export function VariableFields({ fields, values, onChange, serverErrors, notes, disabled, idPrefix }: VariableFieldsProps) {
  const shown = fields.filter((f) => !f.hidden);
  if (shown.length === 0) return <p className="muted">This server has no variables you can see.</p>;
  return (
    <div className="var-grid">
      {shown.map((f) => {
        const id = `${idPrefix}-${f.name}`;
        const value = values[f.name] ?? f.value;
        const error = fieldError(f, value, serverErrors);
        const note = notes?.get(f.name)?.join('; ');
        const describedBy = [`${id}-name`, f.description ? `${id}-hint` : '', f.readOnly ? `${id}-ro` : '', note ? `${id}-note` : '', error ? `${id}-error` : '']
          .filter(Boolean)
          .join(' ');
        const common = {
          id,
          disabled: disabled || f.readOnly,
          'aria-invalid': error ? (true as const) : undefined,
          'aria-describedby': describedBy,
          'data-variable': f.name,
        };
        let input;
        if (f.kind === 'toggle' && f.options) {
          const [on, off] = f.options;
          input = (
            <input
              {...common}
              type="checkbox"
              role="switch"
              className="var-toggle"
              checked={value === on.value}
              onChange={(e) => onChange(f.name, e.target.checked ? on.value : off.value)}
            />
          );
        } else if (f.kind === 'select' && f.options) {
          input = (
            <select {...common} required={f.required} value={value} onChange={(e) => onChange(f.name, e.target.value)}>
              {f.options.map((o) => (
                <option key={o.value} value={o.value}>
                  {o.label}
                </option>
              ))}
            </select>
          );
        } else if (f.kind === 'number') {
          input = (
            <input
              {...common}
              type="number"
              min={f.min}
              max={f.max}
              step={f.step}
              required={f.required}
              value={value}
              onChange={(e) => onChange(f.name, e.target.value)}
            />
          );
        } else {
          input = (
            <input
              {...common}
              type="text"
              required={f.required}
              maxLength={f.maxLength}
              spellCheck={false}
              value={value}
              onChange={(e) => onChange(f.name, e.target.value)}
            />
          );
        }
        return (
          <div className={`field var-field${f.kind === 'toggle' ? ' var-field-toggle' : ''}`} key={f.name}>
            <label htmlFor={id}>
              {f.label}
              {f.required && <span className="muted"> (required)</span>}
            </label>
            <span className="hint">
              <span className="mono" id={`${id}-name`}>
                {f.name}
              </span>
              {f.kind === 'number' && (f.min !== undefined || f.max !== undefined) && (
                <span>
                  {' '}
                  · {f.min !== undefined && f.max !== undefined ? `${f.min} to ${f.max}` : f.min !== undefined ? `at least ${f.min}` : `at most ${f.max}`}
                </span>
              )}
              {f.maxLength !== undefined && f.kind === 'text' && <span> · at most {f.maxLength} characters</span>}
            </span>
            {f.description && (
              <span className="hint var-description" id={`${id}-hint`}>
                {f.description}
              </span>
            )}
            {input}
            {f.readOnly && (
              <span className="hint" id={`${id}-ro`}>
                Only an operator may change this one.
              </span>
            )}
            {note && (
              <span className="hint var-note" id={`${id}-note`}>
                {note}
              </span>
            )}
            {error && (
              <span className="error" id={`${id}-error`} role="alert">
                {error}
              </span>
            )}
          </div>
        );
      })}
    </div>
  );
}

/**
 * Runs `run` 500 ms after `key` last changed (skipped while `enabled` is false); an answer that
 * arrives after a newer run started is dropped (its signal is aborted).
 */
export function useQuietRun(key: string, enabled: boolean, run: (signal: AbortSignal) => Promise<void>, delay = 500) {
  const latest = useRef(run);
  latest.current = run;
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    if (!enabled) return;
    const abort = new AbortController();
    const t = setTimeout(() => {
      setBusy(true);
      void latest.current(abort.signal).finally(() => {
        if (!abort.signal.aborted) setBusy(false);
      });
    }, delay);
    return () => {
      clearTimeout(t);
      abort.abort();
    };
  }, [key, enabled, delay]);
  return busy;
}

// A modal dialog on the native <dialog> (focus trapped by the browser, Escape closes it) with a
// heading, used by the file manager, backups and schedules for confirmations and small forms.

import { useEffect, useId, useRef, useState, type FormEvent, type InputHTMLAttributes, type ReactNode } from 'react';

import { api, resourcePath } from '../../../api/client';

import { ErrorAlert, errorText } from '../../../components/AdminKit';

export function Dialog({
  title,
  children,
  onClose,
  onSubmit,
  submitLabel,
  busy,
  danger,
  error,
}: {
  title: string;
  children?: ReactNode;
  onClose: () => void;
  /** when given, the dialog is a form and this runs on submit */
  onSubmit?: () => void | Promise<void>;
  submitLabel?: string;
  busy?: boolean;
  danger?: boolean;
  /** the API's message, shown with role="alert" */
  error?: string;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  const id = useId();
  useEffect(() => {
    const d = ref.current;
    if (d && !d.open) {
      if (typeof d.showModal === 'function') d.showModal();
      else d.setAttribute('open', '');
    }
  }, []);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (!busy) void onSubmit?.();
  };
  return (
    <dialog
      ref={ref}
      className="gs-dialog"
      aria-labelledby={`${id}-t`}
      onCancel={(e) => {
        e.preventDefault();
        onClose();
      }}
    >
      <form method="dialog" onSubmit={submit}>
        <h2 id={`${id}-t`}>{title}</h2>
        {children}
        <ErrorAlert error={error} />
        <div className="toolbar gs-dialog-actions">
          <span className="spacer" />
          <button type="button" onClick={onClose}>
            {onSubmit ? 'Cancel' : 'Close'}
          </button>
          {onSubmit && (
            <button type="submit" className={danger ? 'danger' : 'primary'} disabled={busy}>
              {busy ? 'Working…' : (submitLabel ?? 'OK')}
            </button>
          )}
        </div>
      </form>
    </dialog>
  );
}

/** The message of an error for people: the API's Status message when there is one. */
export { errorText as messageOf };

/** A labelled text input of a dialog with its hint under it (id `${id}-hint`) and its error. */
export function HintedField({
  id,
  label,
  hint,
  error,
  value,
  onChange,
  ...rest
}: {
  id: string;
  label: string;
  hint: ReactNode;
  error: string;
  value: string;
  onChange: (value: string) => void;
} & Omit<InputHTMLAttributes<HTMLInputElement>, 'id' | 'value' | 'onChange'>) {
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      <input
        id={id}
        {...rest}
        value={value}
        onChange={(ev) => onChange(ev.target.value)}
        aria-invalid={!!error}
        aria-describedby={`${id}-hint`}
      />
      <span id={`${id}-hint`} className="hint">
        {hint}
      </span>
      {error && <span className="error">{error}</span>}
    </div>
  );
}

/** "Delete <name>?": deletes the object on confirming; the API's refusal (e.g. 409) stays shown. */
export function DeleteDialog({
  plural,
  ns,
  name,
  onClose,
  onDone,
  children,
}: {
  plural: string;
  ns: string;
  name: string;
  onClose: () => void;
  onDone: () => void;
  children?: ReactNode;
}) {
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState('');
  const submit = async () => {
    setBusy(true);
    setErr('');
    try {
      await api(resourcePath(plural, ns, name), { method: 'DELETE' });
      onDone();
    } catch (e) {
      setErr(errorText(e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <Dialog title={`Delete ${name}?`} onClose={onClose} onSubmit={submit} submitLabel="Delete" danger busy={busy} error={err}>
      {children}
    </Dialog>
  );
}

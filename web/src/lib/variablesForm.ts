// A Template's variables (and a server's values) as form fields: the widget each variable's rules
// call for, what a user may see and change, and the value to show.

import type { TemplateVariable } from '../api/types';
import { has, inList, parseRules, type RuleSet } from './rules';

export type FieldKind = 'select' | 'toggle' | 'number' | 'text';

export interface FieldOption {
  value: string;
  label: string;
}

export interface FieldDescriptor {
  /** the variable's name (its environment name) */
  name: string;
  label: string;
  description: string;
  kind: FieldKind;
  /** select: the choices; toggle: [on, off] */
  options?: FieldOption[];
  min?: number;
  max?: number;
  step?: number | 'any';
  /** text: the longest value (`string|max:N`) */
  maxLength?: number;
  minLength?: number;
  required: boolean;
  readOnly: boolean;
  /** not shown to this user (`userViewable: false` and not an operator) */
  hidden: boolean;
  /** the value to show: the server's, else the default */
  value: string;
  default: string;
  /** whether the server sets it (else the default applies) */
  set: boolean;
  rules: RuleSet;
  rulesText: string;
}

/** The values a toggle writes: [on, off]. `in:true,false` (any case) says true/false, else 1/0. */
export function toggleValues(set: RuleSet): [string, string] | undefined {
  const list = inList(set);
  if (list && list.length === 2) {
    const lower = list.map((x) => x.toLowerCase());
    const t = lower.indexOf('true');
    const f = lower.indexOf('false');
    if (t >= 0 && f >= 0) return [list[t], list[f]];
    const one = list.indexOf('1');
    const zero = list.indexOf('0');
    if (one >= 0 && zero >= 0) return ['1', '0'];
  }
  if (has(set, 'boolean')) return ['1', '0'];
  return undefined;
}

/** One variable as a field. */
export function variableField(
  v: TemplateVariable,
  values: Record<string, string> | undefined,
  operator: boolean,
): FieldDescriptor {
  const rules = parseRules(v.rules);
  const def = v.default ?? '';
  const set = values !== undefined && Object.prototype.hasOwnProperty.call(values, v.name);
  const value = set ? values![v.name] : def;
  const f: FieldDescriptor = {
    name: v.name,
    label: v.displayName?.trim() || v.name,
    description: v.description ?? '',
    kind: 'text',
    required: rules.required,
    readOnly: !operator && v.userEditable !== true,
    hidden: !operator && v.userViewable !== true,
    value,
    default: def,
    set,
    rules,
    rulesText: v.rules ?? '',
  };
  const toggle = toggleValues(rules);
  const list = inList(rules);
  if (toggle && (value === '' || toggle.includes(value)) && (def === '' || toggle.includes(def))) {
    f.kind = 'toggle';
    f.options = [
      { value: toggle[0], label: 'on' },
      { value: toggle[1], label: 'off' },
    ];
  } else if (list) {
    f.kind = 'select';
    const opts = list.map((x) => ({ value: x, label: x }));
    // an empty value passes every rule but `required`
    if (!rules.required) opts.unshift({ value: '', label: '(none)' });
    // a value set before the rules changed is shown as it is (the server judges it)
    if (!opts.some((o) => o.value === value)) opts.push({ value, label: `${value} (not allowed)` });
    f.options = opts;
  } else if (rules.numeric) {
    f.kind = 'number';
    f.step = has(rules, 'integer') ? 1 : 'any';
    for (const r of rules.rules) {
      if (r.kind === 'max') f.max = min(f.max, r.n);
      else if (r.kind === 'min') f.min = max(f.min, r.n);
      else if (r.kind === 'between') {
        f.min = max(f.min, r.a);
        f.max = min(f.max, r.b);
      }
    }
  } else {
    for (const r of rules.rules) {
      // without numeric rules, sizes are lengths
      if (r.kind === 'max') f.maxLength = min(f.maxLength, Math.floor(r.n));
      else if (r.kind === 'size') {
        f.maxLength = min(f.maxLength, Math.floor(r.n));
        f.minLength = max(f.minLength, Math.ceil(r.n));
      } else if (r.kind === 'between') f.maxLength = min(f.maxLength, Math.floor(r.b));
      else if (r.kind === 'digits') f.maxLength = min(f.maxLength, r.n);
      else if (r.kind === 'digits_between') f.maxLength = min(f.maxLength, r.b);
    }
  }
  return f;
}

function min(a: number | undefined, b: number): number {
  return a === undefined ? b : Math.min(a, b);
}
function max(a: number | undefined, b: number): number {
  return a === undefined ? b : Math.max(a, b);
}

/** The Template's variables as fields, in the Template's order. */
export function variablesForm(
  variables: TemplateVariable[] | undefined,
  values: Record<string, string> | undefined,
  operator: boolean,
): FieldDescriptor[] {
  return (variables ?? []).map((v) => variableField(v, values, operator));
}

/** A server's variables when it has no Template: plain text fields. */
export function plainFields(values: Record<string, string> | undefined, editable: boolean): FieldDescriptor[] {
  return Object.entries(values ?? {})
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, value]) => ({
      name,
      label: name,
      description: '',
      kind: 'text' as const,
      required: false,
      readOnly: !editable,
      hidden: false,
      value,
      default: '',
      set: true,
      rules: parseRules(''),
      rulesText: '',
    }));
}

/**
 * The `spec.variables` to send: the server's current values with the user's edits over them
 * (kept whole, so an apply never drops a value the panel wrote before).
 */
export function variablesToSend(current: Record<string, string> | undefined, edits: Record<string, string>): Record<string, string> {
  return { ...(current ?? {}), ...edits };
}

/**
 * The variable a Status cause names: `spec.variables[NAME]` (admission) or
 * `spec.variables.NAME` (an apply conflict).
 */
export function variableOfField(field: string | undefined): string | undefined {
  if (!field) return undefined;
  const m = /^spec\.variables(?:\[(.+)\]|\.(.+))$/.exec(field);
  return m ? (m[1] ?? m[2]) : undefined;
}

/** Causes of a Status by variable name; the rest (other fields) under `''`. */
export function causesByVariable(causes: { field?: string; message?: string }[] | undefined): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const c of causes ?? []) {
    const k = variableOfField(c.field) ?? '';
    const msg = c.message ?? '';
    out.set(k, [...(out.get(k) ?? []), k ? msg : c.field ? `${c.field}: ${msg}` : msg]);
  }
  return out;
}

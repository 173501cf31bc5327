import { describe, expect, it } from 'vitest';

import type { TemplateVariable } from '../api/types';
import { causesByVariable, plainFields, variableField, variableOfField, variablesForm, variablesToSend } from './variablesForm';

const v = (name: string, rules: string, more: Partial<TemplateVariable> = {}): TemplateVariable => ({
  name,
  rules,
  userViewable: true,
  userEditable: true,
  ...more,
});

describe('variables as form fields', () => {
  it('in: is a select, with (none) only when not required', () => {
    const f = variableField(v('BUILD', 'required|string|in:recommended,latest', { default: 'latest' }), undefined, false);
    expect(f.kind).toBe('select');
    expect(f.options?.map((o) => o.value)).toEqual(['recommended', 'latest']);
    expect(f.value).toBe('latest');
    expect(f.required).toBe(true);
    const g = variableField(v('BUILD', 'nullable|in:a,b'), undefined, false);
    expect(g.options?.map((o) => o.value)).toEqual(['', 'a', 'b']);
    // a value outside the list is still shown
    const h = variableField(v('BUILD', 'required|in:a,b'), { BUILD: 'c' }, false);
    expect(h.options?.map((o) => o.value)).toEqual(['a', 'b', 'c']);
  });

  it('boolean is a toggle of 1/0; in:true,false a toggle of true/false', () => {
    const f = variableField(v('AUTO_UPDATE', 'required|boolean', { default: '1' }), undefined, false);
    expect(f.kind).toBe('toggle');
    expect(f.options?.map((o) => o.value)).toEqual(['1', '0']);
    const g = variableField(v('PVP', 'required|string|in:true,false', { default: 'false' }), undefined, false);
    expect(g.kind).toBe('toggle');
    expect(g.options?.map((o) => o.value)).toEqual(['true', 'false']);
    const h = variableField(v('X', 'in:False,True'), undefined, false);
    expect(h.options?.map((o) => o.value)).toEqual(['True', 'False']);
    // a value a toggle could not show keeps a select
    const k = variableField(v('PVP', 'in:true,false'), { PVP: 'maybe' }, false);
    expect(k.kind).toBe('select');
  });

  it('integer and numeric are numbers with their bounds', () => {
    const f = variableField(v('PORT', 'required|integer|between:1025,65535'), undefined, false);
    expect(f).toMatchObject({ kind: 'number', min: 1025, max: 65535, step: 1 });
    const g = variableField(v('SLOTS', 'required|integer|max:128'), undefined, false);
    expect(g).toMatchObject({ kind: 'number', max: 128, step: 1 });
    expect(g.min).toBeUndefined();
    const h = variableField(v('RATE', 'nullable|numeric|min:0.5'), undefined, false);
    expect(h).toMatchObject({ kind: 'number', min: 0.5, step: 'any' });
  });

  it('text with a length limit from string rules', () => {
    const f = variableField(v('VERSION', 'nullable|string|max:20', { default: 'latest' }), undefined, false);
    expect(f).toMatchObject({ kind: 'text', maxLength: 20, required: false, value: 'latest', set: false });
    const g = variableField(v('KEY', 'required|string|alpha_num|size:32'), undefined, false);
    expect(g).toMatchObject({ kind: 'text', maxLength: 32, minLength: 32 });
    const h = variableField(v('JAR', 'required|regex:/^([\\w\\d._-]+)(\\.jar)$/'), { JAR: 'paper.jar' }, false);
    expect(h).toMatchObject({ kind: 'text', value: 'paper.jar', set: true });
    expect(h.maxLength).toBeUndefined();
  });

  it('label is the display name, falling back to the name', () => {
    expect(variableField(v('A', '', { displayName: 'Server jar' }), undefined, false).label).toBe('Server jar');
    expect(variableField(v('A', '', { displayName: '' }), undefined, false).label).toBe('A');
  });

  it('userViewable and userEditable bind users, not operators', () => {
    const vars = [
      v('SECRET', 'nullable', { userViewable: false, userEditable: false }),
      v('FIXED', 'nullable', { userViewable: true, userEditable: false }),
      v('FREE', 'nullable'),
      { name: 'ABSENT' }, // absent flags are false, as the API reads them
    ];
    const user = variablesForm(vars, {}, false);
    expect(user.map((f) => [f.name, f.hidden, f.readOnly])).toEqual([
      ['SECRET', true, true],
      ['FIXED', false, true],
      ['FREE', false, false],
      ['ABSENT', true, true],
    ]);
    const op = variablesForm(vars, {}, true);
    expect(op.every((f) => !f.hidden && !f.readOnly)).toBe(true);
  });

  it('plain fields for a server without a template', () => {
    const f = plainFields({ B: '2', A: '1' }, true);
    expect(f.map((x) => [x.name, x.value, x.kind, x.readOnly])).toEqual([
      ['A', '1', 'text', false],
      ['B', '2', 'text', false],
    ]);
    expect(plainFields({ A: '1' }, false)[0].readOnly).toBe(true);
  });

  it('what is sent keeps every current value', () => {
    expect(variablesToSend({ A: '1', B: '2' }, { B: '3', C: '4' })).toEqual({ A: '1', B: '3', C: '4' });
    expect(variablesToSend(undefined, { C: '4' })).toEqual({ C: '4' });
  });

  it('causes map onto variables', () => {
    expect(variableOfField('spec.variables[MAX_PLAYERS]')).toBe('MAX_PLAYERS');
    expect(variableOfField('spec.variables.MOTD')).toBe('MOTD');
    expect(variableOfField('spec.template')).toBeUndefined();
    const m = causesByVariable([
      { field: 'spec.variables[A]', message: 'is required' },
      { field: 'spec.variables.A', message: 'conflict with "catalystctl"' },
      { field: 'spec.template', message: 'no Template named "x"' },
    ]);
    expect(m.get('A')).toEqual(['is required', 'conflict with "catalystctl"']);
    expect(m.get('')).toEqual(['spec.template: no Template named "x"']);
  });
});

import { describe, expect, it } from 'vitest';

import { emptyForm, emptyTask, formOf, formProblems, move, specOf, type ScheduleSpec } from './schedule';

describe('schedule form', () => {
  it('round-trips a spec', () => {
    const spec: ScheduleSpec = {
      gameServer: 'mc',
      cron: '0 4 * * *',
      timezone: 'Europe/Berlin',
      onlyWhenRunning: true,
      startingDeadlineSeconds: 600,
      suspend: false,
      tasks: [
        { action: 'Command', payload: 'say bye', offsetSeconds: 0, continueOnFailure: false },
        { action: 'Backup', offsetSeconds: 240, continueOnFailure: true },
        { action: 'Restart', offsetSeconds: 60, continueOnFailure: false },
      ],
    };
    expect(specOf(formOf('x', spec), 'mc')).toEqual(spec);
  });
  it('clears optional fields with null and normalises the cron', () => {
    const f = { ...emptyForm(), cron: ' 0  4 * * * ', timezone: '' };
    const s = specOf(f, 'mc');
    expect(s.cron).toBe('0 4 * * *');
    expect(s.timezone).toBe('UTC');
    expect(s.startingDeadlineSeconds).toBeNull();
    expect(s.tasks).toEqual([{ action: 'Restart', offsetSeconds: 0, continueOnFailure: false }]);
  });
  it('finds problems by field', () => {
    expect(formProblems(emptyForm())).toEqual({});
    const f = { ...emptyForm(), deadline: '5', tasks: [emptyTask('Command'), { ...emptyTask('Stop'), offset: '-1' }] };
    const p = formProblems(f);
    expect(Object.keys(p).sort()).toEqual(['spec.startingDeadlineSeconds', 'spec.tasks[0].payload', 'spec.tasks[1].offsetSeconds']);
    expect(formProblems({ ...emptyForm(), tasks: [] })['spec.tasks']).toBeDefined();
  });
  it('moves tasks', () => {
    expect(move([1, 2, 3], 0, 1)).toEqual([2, 1, 3]);
    expect(move([1, 2, 3], 0, -1)).toEqual([1, 2, 3]);
    expect(move([1, 2, 3], 2, -1)).toEqual([1, 3, 2]);
  });
});

import { describe, expect, it } from 'vitest';

import type { Condition } from '../api/types';
import { pullProgress } from './pullProgress';

const cond = (c: Partial<Condition>): Condition =>
  ({ type: 'ImagePulled', status: 'False', reason: 'Pulling', ...c }) as Condition;

describe('pullProgress', () => {
  it('reads the percent of a pull in progress', () => {
    expect(pullProgress([cond({ message: '123.4 MiB of 456.7 MiB (27%)' })])).toEqual({
      percent: 27,
      message: '123.4 MiB of 456.7 MiB (27%)',
    });
  });

  it('is null once pulled, after a failure, without a percent or without the condition', () => {
    expect(pullProgress([cond({ status: 'True', reason: 'Pulled', message: '(100%)' })])).toBeNull();
    expect(pullProgress([cond({ reason: 'PullFailed', message: 'x (10%)' })])).toBeNull();
    expect(pullProgress([cond({ message: 'starting' })])).toBeNull();
    expect(pullProgress([{ ...cond({ message: '(5%)' }), type: 'Ready' }])).toBeNull();
    expect(pullProgress(undefined)).toBeNull();
  });

  it('never goes past 100', () => {
    expect(pullProgress([cond({ message: '(150%)' })])?.percent).toBe(100);
  });
});

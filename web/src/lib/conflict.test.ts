import { describe, expect, it } from 'vitest';

import type { Status } from '../api/client';
import { byField, managerOf, parseConflict, unquoteRust } from './conflict';

// exactly what apply.rs's apply_config answers (error.rs: code 409, reason Conflict)
const status: Status = {
  kind: 'Status',
  status: 'Failure',
  code: 409,
  reason: 'Conflict',
  message:
    'Apply failed with 2 conflict(s): spec.variables.MOTD (conflict with "catalystctl"), spec.image (conflict with "gitops"). Re-apply with force to take ownership, or leave these fields out.',
  details: {
    causes: [
      { field: 'spec.variables.MOTD', message: 'conflict with "catalystctl"' },
      { field: 'spec.image', message: 'conflict with "gitops"' },
    ],
  },
};

describe('parseConflict', () => {
  it('reads the causes', () => {
    expect(parseConflict(status)).toEqual([
      { field: 'spec.variables.MOTD', manager: 'catalystctl' },
      { field: 'spec.image', manager: 'gitops' },
    ]);
  });

  it('reads the message when there are no causes', () => {
    expect(parseConflict({ ...status, details: undefined })).toEqual([
      { field: 'spec.variables.MOTD', manager: 'catalystctl' },
      { field: 'spec.image', manager: 'gitops' },
    ]);
    const one = {
      code: 409,
      reason: 'Conflict',
      message:
        'Apply failed with 1 conflict(s): metadata.labels.app.kubernetes.io/name (conflict with "kubectl-client-side-apply"). Re-apply with force to take ownership, or leave these fields out.',
    };
    expect(parseConflict(one)).toEqual([{ field: 'metadata.labels.app.kubernetes.io/name', manager: 'kubectl-client-side-apply' }]);
  });

  it('undoes Rust quoting of odd manager names', () => {
    const s: Status = {
      code: 409,
      reason: 'Conflict',
      message: 'Apply failed with 1 conflict(s): spec.image (conflict with "my \\"tool\\""). Re-apply with force to take ownership, or leave these fields out.',
      details: { causes: [{ field: 'spec.image', message: 'conflict with "my \\"tool\\""' }] },
    };
    expect(parseConflict(s)).toEqual([{ field: 'spec.image', manager: 'my "tool"' }]);
    expect(parseConflict({ ...s, details: {} })).toEqual([{ field: 'spec.image', manager: 'my "tool"' }]);
    expect(unquoteRust('a\\\\b\\u{e9}')).toBe('a\\bé');
    expect(managerOf('conflict with "x"')).toBe('x');
    expect(managerOf('must be a string')).toBeUndefined();
  });

  it('gives nothing for other errors, even other 409s', () => {
    expect(parseConflict(undefined)).toEqual([]);
    expect(
      parseConflict({
        code: 409,
        reason: 'Conflict',
        message:
          'Operation cannot be fulfilled on GameServer "web": the object has been modified; apply your changes to the latest version and try again',
      }),
    ).toEqual([]);
    expect(parseConflict({ code: 409, reason: 'AlreadyExists', message: 'gameservers "web" already exists' })).toEqual([]);
    expect(
      parseConflict({
        code: 422,
        reason: 'Invalid',
        message: 'x',
        details: { causes: [{ field: 'spec.image', message: 'conflict with "x"' }] },
      }),
    ).toEqual([]);
  });
});

describe('byField', () => {
  it('groups managers per field', () => {
    expect(
      byField([
        { field: 'spec.image', manager: 'a' },
        { field: 'spec.image', manager: 'b' },
        { field: 'spec.x', manager: 'a' },
        { field: 'spec.image', manager: 'a' },
      ]),
    ).toEqual([
      { field: 'spec.image', managers: ['a', 'b'] },
      { field: 'spec.x', managers: ['a'] },
    ]);
  });
});

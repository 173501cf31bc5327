// The nodelet's image pull progress (pure): the `ImagePulled` condition, False with reason
// `Pulling` and a message like `123.4 MiB of 456.7 MiB (27%)`, written at most once a second
// while the layers stream.

import type { Condition } from '../api/types';

export interface PullProgress {
  /** 0–100. */
  percent: number;
  /** The nodelet's message, e.g. `123.4 MiB of 456.7 MiB (27%)`. */
  message: string;
}

/** The pull in progress, or null when no pull is reported as running. */
export function pullProgress(conditions: Condition[] | undefined): PullProgress | null {
  const c = conditions?.find((x) => x.type === 'ImagePulled');
  if (c == null || c.status !== 'False' || c.reason !== 'Pulling') return null;
  const message = c.message ?? '';
  const m = /\((\d{1,3})%\)$/.exec(message);
  if (m == null) return null;
  return { percent: Math.min(100, Number(m[1])), message };
}

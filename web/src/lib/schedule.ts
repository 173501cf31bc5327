// The schedule form's state and the Schedule spec it makes (schemas: ScheduleSpec,
// ScheduleTask), both ways, so an edit round-trips what the form does not show untouched.

export const TASK_ACTIONS = ['Command', 'Start', 'Stop', 'Restart', 'Backup'] as const;
export type TaskAction = (typeof TASK_ACTIONS)[number];
export const MAX_TASKS = 32;

export interface TaskSpec {
  action: TaskAction;
  payload?: string | null;
  offsetSeconds?: number;
  continueOnFailure?: boolean;
}

export interface ScheduleSpec {
  gameServer: string;
  cron: string;
  timezone?: string;
  onlyWhenRunning?: boolean;
  startingDeadlineSeconds?: number | null;
  suspend?: boolean;
  tasks?: TaskSpec[];
}

export interface TaskForm {
  action: TaskAction;
  payload: string;
  offset: string;
  continueOnFailure: boolean;
}

export interface ScheduleForm {
  name: string;
  cron: string;
  timezone: string;
  onlyWhenRunning: boolean;
  deadline: string;
  suspend: boolean;
  tasks: TaskForm[];
}

export function emptyTask(action: TaskAction = 'Command'): TaskForm {
  return { action, payload: '', offset: '0', continueOnFailure: false };
}

export function emptyForm(): ScheduleForm {
  return { name: '', cron: '0 4 * * *', timezone: 'UTC', onlyWhenRunning: false, deadline: '', suspend: false, tasks: [emptyTask('Restart')] };
}

export function formOf(name: string, spec: ScheduleSpec): ScheduleForm {
  return {
    name,
    cron: spec.cron,
    timezone: spec.timezone || 'UTC',
    onlyWhenRunning: spec.onlyWhenRunning ?? false,
    deadline: spec.startingDeadlineSeconds != null ? String(spec.startingDeadlineSeconds) : '',
    suspend: spec.suspend ?? false,
    tasks: (spec.tasks ?? []).map((t) => ({
      action: t.action,
      payload: t.payload ?? '',
      offset: String(t.offsetSeconds ?? 0),
      continueOnFailure: t.continueOnFailure ?? false,
    })),
  };
}

export interface FormProblems {
  [field: string]: string;
}

const whole = (s: string) => /^\d+$/.test(s.trim());

/** What is wrong with the form, by spec field path (`spec.tasks[1].payload`); empty when nothing. */
export function formProblems(f: ScheduleForm): FormProblems {
  const p: FormProblems = {};
  if (f.deadline.trim() && (!whole(f.deadline) || Number(f.deadline) < 10))
    p['spec.startingDeadlineSeconds'] = 'a whole number of seconds, at least 10 (or empty: however late)';
  if (f.tasks.length === 0) p['spec.tasks'] = 'a schedule needs at least one task';
  if (f.tasks.length > MAX_TASKS) p['spec.tasks'] = `at most ${MAX_TASKS} tasks`;
  f.tasks.forEach((t, i) => {
    if (t.action === 'Command' && !t.payload.trim()) p[`spec.tasks[${i}].payload`] = 'the console line to send';
    if (!whole(t.offset || '0')) p[`spec.tasks[${i}].offsetSeconds`] = 'whole seconds, 0 or more';
  });
  return p;
}

/** The spec of a form. Cleared optional fields are `null` so a merge patch removes them. */
export function specOf(f: ScheduleForm, gameServer: string): ScheduleSpec {
  return {
    gameServer,
    cron: f.cron.trim().replace(/\s+/g, ' '),
    timezone: f.timezone.trim() || 'UTC',
    onlyWhenRunning: f.onlyWhenRunning,
    startingDeadlineSeconds: f.deadline.trim() ? Number(f.deadline) : null,
    suspend: f.suspend,
    tasks: f.tasks.map((t) => {
      const out: TaskSpec = { action: t.action, offsetSeconds: Number(t.offset || '0'), continueOnFailure: t.continueOnFailure };
      if (t.action === 'Command') out.payload = t.payload;
      return out;
    }),
  };
}

/** `tasks` with item `i` moved by `by` (−1 up, +1 down); unchanged at the ends. */
export function move<T>(tasks: T[], i: number, by: number): T[] {
  const j = i + by;
  if (j < 0 || j >= tasks.length) return tasks;
  const next = [...tasks];
  [next[i], next[j]] = [next[j], next[i]];
  return next;
}

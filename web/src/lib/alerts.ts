// AlertRules (docs/alerts.md) for people, and the simple form's object (pure).

import type { KObject } from '../api/types';

export const METRICS = ['Memory', 'Cpu', 'Disk', 'Network'] as const;
export const EVENTS = ['Crash', 'CrashLoop', 'NodeDown', 'BackupFailed'] as const;
export const FORMATS = ['Generic', 'Discord', 'Slack'] as const;

export interface AlertCondition {
  metric?: string | null;
  event?: string | null;
  operator?: string | null;
  threshold?: number | null;
}

export interface TargetAlert {
  target: string;
  state: 'Pending' | 'Firing' | 'Resolved' | string;
  since: string;
  firedAt?: string | null;
  value?: number | null;
  message?: string;
}

export interface AlertRule extends KObject {
  spec?: {
    gameServer?: string | null;
    selector?: Record<string, string>;
    condition?: AlertCondition;
    for?: string;
    repeatInterval?: string;
    silencedUntil?: string | null;
    notifications?: { webhook: { url: string; format?: string } }[];
  };
  status?: {
    firing?: boolean;
    firingCount?: number;
    pendingCount?: number;
    lastFiredAt?: string | null;
    lastResolvedAt?: string | null;
    alerts?: TargetAlert[];
    untracked?: number;
  };
}

/** What a rule watches: one server, the servers with some labels, or every server. */
export function describeTarget(spec: AlertRule['spec']): string {
  if (spec?.gameServer) return `server ${spec.gameServer}`;
  const labels = Object.entries(spec?.selector ?? {});
  if (labels.length === 0) return 'every server in the namespace';
  return `servers with ${labels.map(([k, v]) => `${k}=${v}`).join(', ')}`;
}

/** "Memory > 90% for 5m", "Network > 1000 B/s", "Crash". */
export function describeCondition(spec: AlertRule['spec']): string {
  const c = spec?.condition ?? {};
  let s: string;
  if (c.event) s = c.event;
  else if (c.metric) {
    const unit = c.metric === 'Network' ? ' B/s' : '%';
    s = `${c.metric} ${c.operator ?? '>'} ${c.threshold ?? '?'}${unit}`;
  } else s = '(no condition)';
  if (spec?.for && spec.for !== '0s') s += ` for ${spec.for}`;
  return s;
}

/** The rule's state in a word: Firing (n), Pending (n), or OK. */
export function ruleState(status: AlertRule['status']): { word: 'Firing' | 'Pending' | 'OK'; count: number } {
  const alerts = status?.alerts ?? [];
  const firing = status?.firingCount ?? alerts.filter((a) => a.state === 'Firing').length;
  if (status?.firing || firing > 0) return { word: 'Firing', count: Math.max(firing, 1) };
  const pending = status?.pendingCount ?? alerts.filter((a) => a.state === 'Pending').length;
  if (pending > 0) return { word: 'Pending', count: pending };
  return { word: 'OK', count: 0 };
}

/** "a=b, c=d" → {a: "b", c: "d"}; throws naming the bad part. */
export function parseLabels(s: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of s.split(',').map((p) => p.trim()).filter(Boolean)) {
    const i = part.indexOf('=');
    if (i <= 0) throw new Error(`"${part}" is not key=value`);
    out[part.slice(0, i).trim()] = part.slice(i + 1).trim();
  }
  return out;
}

export interface AlertForm {
  namespace: string;
  name: string;
  /** "server": one by name; "labels": by selector (empty: all) */
  targetKind: 'server' | 'labels';
  gameServer: string;
  selector: string;
  /** a metric or an event name */
  condition: string;
  operator: '>' | '<';
  threshold: string;
  for: string;
  repeatInterval: string;
  webhookUrl: string;
  webhookFormat: string;
}

/** The AlertRule the simple form describes (the API validates it: its causes name the fields). */
export function alertRuleFromForm(f: AlertForm): AlertRule {
  const isMetric = (METRICS as readonly string[]).includes(f.condition);
  const condition: AlertCondition = isMetric
    ? { metric: f.condition, operator: f.operator, threshold: Number(f.threshold) }
    : { event: f.condition };
  const spec: NonNullable<AlertRule['spec']> = { condition };
  if (f.targetKind === 'server') spec.gameServer = f.gameServer.trim();
  else spec.selector = parseLabels(f.selector);
  if (f.for.trim()) spec.for = f.for.trim();
  if (f.repeatInterval.trim()) spec.repeatInterval = f.repeatInterval.trim();
  spec.notifications = f.webhookUrl.trim()
    ? [{ webhook: { url: f.webhookUrl.trim(), format: f.webhookFormat || 'Generic' } }]
    : [];
  return {
    apiVersion: 'catalyst.dev/v1alpha1',
    kind: 'AlertRule',
    metadata: { name: f.name.trim(), namespace: f.namespace.trim() },
    spec,
  };
}

/** Which form input an API cause's field belongs to (`spec.condition.threshold` → threshold). */
export function formFieldOf(apiField: string): keyof AlertForm | undefined {
  const map: [string, keyof AlertForm][] = [
    ['metadata.name', 'name'],
    ['metadata.namespace', 'namespace'],
    ['spec.gameServer', 'gameServer'],
    ['spec.selector', 'selector'],
    ['spec.condition.threshold', 'threshold'],
    ['spec.condition.operator', 'operator'],
    ['spec.condition', 'condition'],
    ['spec.for', 'for'],
    ['spec.repeatInterval', 'repeatInterval'],
    ['spec.notifications', 'webhookUrl'],
  ];
  return map.find(([p]) => apiField === p || apiField.startsWith(`${p}.`) || apiField.startsWith(`${p}[`))?.[1];
}

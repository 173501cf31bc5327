import { describe, expect, it } from 'vitest';
import { alertRuleFromForm, describeCondition, describeTarget, formFieldOf, parseLabels, ruleState, type AlertForm } from './alerts';

const form: AlertForm = {
  namespace: 'default',
  name: 'survival-memory',
  targetKind: 'labels',
  gameServer: '',
  selector: 'game=minecraft',
  condition: 'Memory',
  operator: '>',
  threshold: '90',
  for: '5m',
  repeatInterval: '1h',
  webhookUrl: 'https://discord.example/api/webhooks/1/x',
  webhookFormat: 'Discord',
};

describe('alertRuleFromForm', () => {
  it('makes a metric rule on labelled servers', () => {
    expect(alertRuleFromForm(form)).toEqual({
      apiVersion: 'catalyst.dev/v1alpha1',
      kind: 'AlertRule',
      metadata: { name: 'survival-memory', namespace: 'default' },
      spec: {
        selector: { game: 'minecraft' },
        condition: { metric: 'Memory', operator: '>', threshold: 90 },
        for: '5m',
        repeatInterval: '1h',
        notifications: [{ webhook: { url: 'https://discord.example/api/webhooks/1/x', format: 'Discord' } }],
      },
    });
  });
  it('makes an event rule on one server without a webhook', () => {
    const r = alertRuleFromForm({ ...form, targetKind: 'server', gameServer: 'survival', condition: 'Crash', for: '', webhookUrl: '' });
    expect(r.spec).toEqual({ gameServer: 'survival', condition: { event: 'Crash' }, repeatInterval: '1h', notifications: [] });
  });
  it('refuses labels that are not key=value', () => {
    expect(() => parseLabels('a=b, c')).toThrow('"c" is not key=value');
    expect(parseLabels('')).toEqual({});
  });
});

describe('describing rules', () => {
  it('says what a rule watches and when it holds', () => {
    expect(describeTarget({ gameServer: 'survival' })).toBe('server survival');
    expect(describeTarget({ selector: { game: 'mc', tier: 'free' } })).toBe('servers with game=mc, tier=free');
    expect(describeTarget({})).toBe('every server in the namespace');
    expect(describeCondition({ condition: { metric: 'Memory', operator: '>', threshold: 90 }, for: '5m' })).toBe('Memory > 90% for 5m');
    expect(describeCondition({ condition: { metric: 'Network', operator: '<', threshold: 10 }, for: '0s' })).toBe('Network < 10 B/s');
    expect(describeCondition({ condition: { event: 'NodeDown' } })).toBe('NodeDown');
  });
  it('sums up the state', () => {
    expect(ruleState(undefined)).toEqual({ word: 'OK', count: 0 });
    expect(ruleState({ firing: true, firingCount: 2 })).toEqual({ word: 'Firing', count: 2 });
    expect(ruleState({ alerts: [{ target: 'gameserver/a', state: 'Pending', since: 'x' }] })).toEqual({ word: 'Pending', count: 1 });
  });
  it('maps API fields onto form inputs', () => {
    expect(formFieldOf('spec.condition.threshold')).toBe('threshold');
    expect(formFieldOf('spec.condition')).toBe('condition');
    expect(formFieldOf('spec.notifications[0].webhook.url')).toBe('webhookUrl');
    expect(formFieldOf('spec.other')).toBeUndefined();
  });
});

import { describe, expect, it } from 'vitest';

import { explainCron } from './cron';

const say = (e: string) => {
  const r = explainCron(e);
  if (!r.ok) throw new Error(`${e}: ${r.error}`);
  return r.description;
};

describe('explainCron', () => {
  it('explains the common forms', () => {
    expect(say('* * * * *')).toBe('Every minute');
    expect(say('*/5 * * * *')).toBe('Every 5 minutes');
    expect(say('0 * * * *')).toBe('At minute 0 past every hour');
    expect(say('0,30 * * * *')).toBe('At minutes 0 and 30 past every hour');
    expect(say('0 4 * * *')).toBe('At 04:00 every day');
    expect(say('30 4,16 * * *')).toBe('At 04:30 and 16:30 every day');
    expect(say('0 */6 * * *')).toBe('At minute 0 past every 6th hour');
    expect(say('0 6 * * 1-5')).toBe('At 06:00 on Monday through Friday');
    expect(say('0 3 * * 0')).toBe('At 03:00 on Sunday');
    expect(say('0 3 * * 7')).toBe('At 03:00 on Sunday');
    expect(say('0 3 * * MON,wed,FRI')).toBe('At 03:00 on Monday, Wednesday and Friday');
    expect(say('0 0 1 * *')).toBe('At 00:00 on day 1 of the month');
    expect(say('0 0 1,15 * *')).toBe('At 00:00 on days 1 and 15 of the month');
    expect(say('0 0 1 JAN *')).toBe('At 00:00 on day 1 of the month in January');
    expect(say('0 12 * 6-8 *')).toBe('At 12:00 every day in June through August');
    expect(say('* 4 * * *')).toBe('Every minute during 04:00–04:59');
  });
  it('knows nicknames, seconds and croner extensions', () => {
    expect(say('@daily')).toBe('At 00:00 every day (@daily)');
    expect(say('@HOURLY')).toBe('At minute 0 past every hour (@hourly)');
    expect(say('30 0 4 * * *')).toBe('At 04:00:30 every day');
    expect(say('0 22 L * *')).toBe('At 22:00 on the last day of the month');
    expect(say('0 9 * * 5L')).toBe('At 09:00 on the last Friday of the month');
    expect(say('0 9 * * MON#2')).toBe('At 09:00 on the second Monday of the month');
    expect(say('0 9 15W * *')).toBe('At 09:00 on the weekday nearest day 15 of the month');
    expect(say('0 0 1 * 1')).toBe('At 00:00 on day 1 of the month or on Monday');
  });
  it('refuses what Schedules refuse, with a reason', () => {
    const bad = (e: string) => {
      const r = explainCron(e);
      expect(r.ok, e).toBe(false);
      return r.error;
    };
    expect(bad('')).toMatch(/needed/);
    expect(bad('* * * *')).toMatch(/4 fields/);
    expect(bad('*/5 * * * * *')).toMatch(/once a minute/);
    expect(bad('0 0 0 1 1 * 2026')).toMatch(/year/);
    expect(bad('60 * * * *')).toMatch(/minute: 60 is outside 0–59/);
    expect(bad('0 24 * * *')).toMatch(/hour/);
    expect(bad('0 0 0 * *')).toMatch(/day of month/);
    expect(bad('0 0 * 13 *')).toMatch(/month/);
    expect(bad('0 0 * * 8')).toMatch(/day of week/);
    expect(bad('0 0 * * FOO')).toMatch(/not a number or a name/);
    expect(bad('*/0 * * * *')).toMatch(/step/);
    expect(bad('5-1 * * * *')).toMatch(/backwards/);
    expect(bad('@reboot')).toMatch(/nickname/);
    expect(bad('1,,2 * * * *')).toMatch(/empty item/);
  });
});

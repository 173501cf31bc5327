// Cron expressions as Schedules take them (docs/schedules.md): 5 fields (minute hour
// day-of-month month day-of-week; weekdays 0–7, 0 and 7 Sunday; names like MON/JAN; `*`, `,`,
// `-`, `/`; croner's `L`, `#`, `W`), a nickname (@hourly …), or 6 fields whose first is one
// second. `explainCron` checks the common forms and says in words when they run. The API is the
// authority (croner); this only helps the person typing.

export interface CronExplained {
  ok: boolean;
  /** why it is refused (when !ok) */
  error?: string;
  /** in words, capitalised, without the time zone */
  description?: string;
}

export const NICKNAMES: Record<string, string> = {
  '@hourly': '0 * * * *',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@weekly': '0 0 * * 0',
  '@monthly': '0 0 1 * *',
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
};

export const CRON_PRESETS: { label: string; cron: string }[] = [
  { label: 'Every 15 minutes', cron: '*/15 * * * *' },
  { label: 'Every hour', cron: '0 * * * *' },
  { label: 'Every 6 hours', cron: '0 */6 * * *' },
  { label: 'Every day at 04:00', cron: '0 4 * * *' },
  { label: 'Weekdays at 06:00', cron: '0 6 * * 1-5' },
  { label: 'Every Sunday at 03:00', cron: '0 3 * * 0' },
  { label: 'First of the month at 00:00', cron: '0 0 1 * *' },
];

const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];
const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday', 'Sunday'];
const MONTH_NAMES = ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'];
const DAY_NAMES = ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'];

type Part =
  | { kind: 'any'; step?: number }
  | { kind: 'range'; from: number; to: number; step?: number }
  | { kind: 'value'; v: number }
  | { kind: 'last' }
  | { kind: 'weekdayNear'; day: number }
  | { kind: 'lastDow'; dow: number }
  | { kind: 'nthDow'; dow: number; n: number };

interface FieldSpec {
  label: string;
  min: number;
  max: number;
  names?: string[];
  /** the first name's number (JAN = 1, SUN = 0) */
  nameBase?: number;
}

const FIELDS: FieldSpec[] = [
  { label: 'minute', min: 0, max: 59 },
  { label: 'hour', min: 0, max: 23 },
  { label: 'day of month', min: 1, max: 31 },
  { label: 'month', min: 1, max: 12, names: MONTH_NAMES, nameBase: 1 },
  { label: 'day of week', min: 0, max: 7, names: DAY_NAMES, nameBase: 0 },
];

class CronError extends Error {}

function value(text: string, f: FieldSpec): number {
  const t = text.toUpperCase();
  if (f.names) {
    const i = f.names.indexOf(t);
    if (i >= 0) return i + (f.nameBase ?? 0);
  }
  if (!/^\d+$/.test(t)) throw new CronError(`${f.label}: "${text}" is not a number${f.names ? ' or a name' : ''}`);
  const n = Number(t);
  if (n < f.min || n > f.max) throw new CronError(`${f.label}: ${n} is outside ${f.min}–${f.max}`);
  return n;
}

function step(text: string, f: FieldSpec): number {
  if (!/^\d+$/.test(text) || Number(text) < 1) throw new CronError(`${f.label}: the step "${text}" must be a whole number of at least 1`);
  return Number(text);
}

function parseField(text: string, f: FieldSpec, index: number): Part[] {
  if (!text) throw new CronError(`${f.label}: empty`);
  return text.split(',').map((raw): Part => {
    const p = raw.trim();
    if (!p) throw new CronError(`${f.label}: an empty item in "${text}"`);
    if (index === 2) {
      if (p.toUpperCase() === 'L') return { kind: 'last' };
      const w = /^(\d+)W$/i.exec(p);
      if (w) return { kind: 'weekdayNear', day: value(w[1], f) };
    }
    if (index === 4) {
      const l = /^(\w+)L$/i.exec(p);
      if (l) return { kind: 'lastDow', dow: value(l[1], f) % 7 };
      const h = /^(\w+)#([1-5])$/.exec(p);
      if (h) return { kind: 'nthDow', dow: value(h[1], f) % 7, n: Number(h[2]) };
    }
    const [base, st, extra] = p.split('/');
    if (extra !== undefined) throw new CronError(`${f.label}: "${p}" has two steps`);
    const s = st === undefined ? undefined : step(st, f);
    if (base === '*' || base === '?') return { kind: 'any', step: s };
    const r = /^(\w+)-(\w+)$/.exec(base);
    if (r) {
      const from = value(r[1], f);
      const to = value(r[2], f);
      if (to < from) throw new CronError(`${f.label}: the range ${base} runs backwards`);
      return { kind: 'range', from, to, step: s };
    }
    const v = value(base, f);
    return s === undefined ? { kind: 'value', v } : { kind: 'range', from: v, to: f.max, step: s };
  });
}

function ordinal(n: number): string {
  const s = n % 100 >= 11 && n % 100 <= 13 ? 'th' : (['th', 'st', 'nd', 'rd'][n % 10] ?? 'th');
  return `${n}${s}`;
}

function listWords(items: string[]): string {
  if (items.length <= 1) return items.join('');
  return `${items.slice(0, -1).join(', ')} and ${items[items.length - 1]}`;
}

const pad = (n: number) => String(n).padStart(2, '0');

/** The values of plain parts (single values only), or undefined when any part is not one. */
function plainValues(parts: Part[]): number[] | undefined {
  if (!parts.every((p) => p.kind === 'value')) return undefined;
  return parts.map((p) => (p as { v: number }).v);
}

const isAny = (parts: Part[]) => parts.length === 1 && parts[0].kind === 'any' && parts[0].step === undefined;

/** One field in words: "minute 5", "minutes 0 and 30", "every 5th minute", "minutes 10 through 20". */
function fieldWords(parts: Part[], unit: string, name: (n: number) => string = String): string {
  const words = parts.map((p) => {
    switch (p.kind) {
      case 'any':
        return p.step ? `every ${ordinal(p.step)} ${unit}` : `every ${unit}`;
      case 'value':
        return name(p.v);
      case 'range':
        return p.step
          ? `every ${ordinal(p.step)} ${unit} from ${name(p.from)} through ${name(p.to)}`
          : `${name(p.from)} through ${name(p.to)}`;
      default:
        return '';
    }
  });
  const bare = parts.every((p) => p.kind === 'value' || (p.kind === 'range' && !p.step));
  if (bare) return `${unit}${parts.length > 1 || parts[0].kind === 'range' ? 's' : ''} ${listWords(words)}`;
  return listWords(words);
}

function timeWords(min: Part[], hour: Part[], second: number): string {
  const sec = second ? `:${pad(second)}` : '';
  const ms = plainValues(min);
  const hs = plainValues(hour);
  if (ms && hs && ms.length * hs.length <= 6) {
    const times: string[] = [];
    for (const h of [...hs].sort((a, b) => a - b)) for (const m of [...ms].sort((a, b) => a - b)) times.push(`${pad(h)}:${pad(m)}${sec}`);
    return `at ${listWords(times)}`;
  }
  const secWords = second ? ` (at second ${second})` : '';
  let minutes: string;
  if (isAny(min)) minutes = 'every minute';
  else if (min.length === 1 && min[0].kind === 'any') minutes = `every ${min[0].step} minutes`;
  else minutes = `at ${fieldWords(min, 'minute')}`;
  if (isAny(hour)) {
    return ms ? `${minutes} past every hour${secWords}` : `${minutes}${secWords}`;
  }
  if (hour.length === 1 && hour[0].kind === 'any') {
    const n = hour[0].step as number;
    return `${minutes} past every ${n === 1 ? '' : `${ordinal(n)} `}hour${secWords}`;
  }
  if (hs && !ms) {
    const spans = [...hs].sort((a, b) => a - b).map((h) => `${pad(h)}:00–${pad(h)}:59`);
    return `${minutes} during ${listWords(spans)}${secWords}`;
  }
  return `${minutes} past ${fieldWords(hour, 'hour')}${secWords}`;
}

function dayWords(dom: Part[], month: Part[], dow: Part[]): string {
  const out: string[] = [];
  const domWords = dom.map((p) => {
    switch (p.kind) {
      case 'last':
        return 'the last day of the month';
      case 'weekdayNear':
        return `the weekday nearest day ${p.day} of the month`;
      default:
        return '';
    }
  });
  const plainDom = dom.filter((p) => p.kind !== 'last' && p.kind !== 'weekdayNear');
  let domText = '';
  if (!isAny(dom)) {
    const pieces = domWords.filter(Boolean);
    if (plainDom.length) {
      pieces.unshift(`${fieldWords(plainDom, 'day')} of the month`);
    }
    domText = `on ${listWords(pieces)}`;
  }
  let dowText = '';
  if (!isAny(dow)) {
    const pieces = dow.map((p) => {
      switch (p.kind) {
        case 'value':
          return DAYS[p.v];
        case 'range':
          return p.step
            ? `every ${ordinal(p.step)} day of the week from ${DAYS[p.from]} through ${DAYS[p.to]}`
            : `${DAYS[p.from]} through ${DAYS[p.to]}`;
        case 'any':
          return `every ${ordinal(p.step ?? 1)} day of the week`;
        case 'lastDow':
          return `the last ${DAYS[p.dow]} of the month`;
        case 'nthDow':
          return `the ${['', 'first', 'second', 'third', 'fourth', 'fifth'][p.n]} ${DAYS[p.dow]} of the month`;
        default:
          return '';
      }
    });
    dowText = `on ${listWords(pieces)}`;
  }
  if (domText && dowText) out.push(`${domText} or ${dowText}`);
  else if (domText || dowText) out.push(domText || dowText);
  if (!isAny(month)) out.push(`in ${fieldWords(month, 'month', (n) => MONTHS[n - 1]).replace(/^months? /, '')}`);
  return out.join(' ');
}

/** Checks `expr` and says when it runs. */
export function explainCron(expr: string): CronExplained {
  const text = expr.trim().replace(/\s+/g, ' ');
  if (!text) return { ok: false, error: 'a cron expression is needed, like "0 4 * * *"' };
  let fields: string[];
  let nickname = '';
  if (text.startsWith('@')) {
    const e = NICKNAMES[text.toLowerCase()];
    if (!e) return { ok: false, error: `${text} is not a nickname Schedules know (${Object.keys(NICKNAMES).join(', ')})` };
    nickname = text.toLowerCase();
    fields = e.split(' ');
  } else fields = text.split(' ');
  let second = 0;
  if (fields.length === 6) {
    if (!/^\d+$/.test(fields[0]) || Number(fields[0]) > 59)
      return { ok: false, error: 'with 6 fields the first is one second (0–59): a schedule runs at most once a minute' };
    second = Number(fields[0]);
    fields = fields.slice(1);
  } else if (fields.length === 7) {
    return { ok: false, error: 'a year field is not accepted: use 5 fields (minute hour day month weekday)' };
  } else if (fields.length !== 5) {
    return { ok: false, error: `${fields.length} field${fields.length === 1 ? '' : 's'}: a cron expression has 5 (minute hour day-of-month month day-of-week)` };
  }
  try {
    const parts = fields.map((f, i) => parseField(f, FIELDS[i], i));
    const [min, hour, dom, month, dow] = parts;
    const time = timeWords(min, hour, second);
    let days = dayWords(dom, month, dow);
    if (isAny(dom) && isAny(dow) && /^at \d/.test(time)) days = days ? `every day ${days}` : 'every day';
    const sentence = [time, days].filter(Boolean).join(' ');
    const description = sentence.charAt(0).toUpperCase() + sentence.slice(1);
    return { ok: true, description: nickname ? `${description} (${nickname})` : description };
  } catch (e) {
    if (e instanceof CronError) return { ok: false, error: e.message };
    throw e;
  }
}

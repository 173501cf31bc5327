import { describe, expect, it } from 'vitest';

import { check, parseRules, split } from './rules';

/** Each row: rules, value, accepted (the rows of schemas/src/template/rules.rs's tests). */
function table(rows: [string, string, boolean][]) {
  for (const [rules, value, ok] of rows) {
    const set = parseRules(rules);
    expect(set.errors, rules).toEqual([]);
    const got = check(value, set);
    expect(got === null, `${JSON.stringify(rules)} on ${JSON.stringify(value)}: ${got}`).toBe(ok);
  }
}

describe('rules as the API checks them', () => {
  it('required and nullable', () => {
    table([
      ['required', 'x', true],
      ['required', '', false],
      ['required', '   ', false],
      ['nullable|string', '', true],
      ['string|max:3', '', true],
      ['nullable|integer', '', true],
      ['required|integer', ' ', false],
    ]);
  });

  it('integer, numeric, boolean', () => {
    table([
      ['integer', '0', true],
      ['integer', '-12', true],
      ['integer', '+7', true],
      ['integer', ' 42 ', true],
      ['integer', '007', false],
      ['integer', '1.0', false],
      ['integer', '1e3', false],
      ['integer', 'abc', false],
      ['integer', '99999999999999999999', false],
      ['numeric', '1.5', true],
      ['numeric', '.5', true],
      ['numeric', '-3e2', true],
      ['numeric', '007', true],
      ['numeric', '0x1A', false],
      ['numeric', '1,5', false],
      ['numeric', 'e5', false],
      ['boolean', '0', true],
      ['boolean', '1', true],
      ['boolean', 'true', false],
      ['boolean', '2', false],
    ]);
  });

  it('sizes compare numbers with numeric rules and lengths otherwise', () => {
    table([
      ['required|integer|max:128', '128', true],
      ['required|integer|max:128', '129', false],
      ['required|string|max:20', 'abcdefghijklmnopqrst', true],
      ['required|string|max:20', 'abcdefghijklmnopqrstu', false],
      ['max:3', '1000', false],
      ['numeric|max:3', '1000', false],
      ['numeric|max:3', '3', true],
      ['min:3', 'ab', false],
      ['min:3', 'abc', true],
      ['integer|min:10', '9', false],
      ['required|integer|between:1025,65535', '1025', true],
      ['required|integer|between:1025,65535', '80', false],
      ['required|integer|between:1025,65535', '65536', false],
      ['between:1,6', 'latest', true],
      ['between:1,6', 'latest!', false],
      ['between:1,6', 'ünïcö', true],
      ['required|string|alpha_num|size:32', 'a'.repeat(32), true],
      ['required|string|alpha_num|size:32', 'a'.repeat(31), false],
      ['numeric|size:5', '5', true],
      ['numeric|size:5', '12345', false],
      ['max:1', '😀', true], // one character (two UTF-16 units)
    ]);
  });

  it('digits and lists', () => {
    table([
      ['digits_between:1,6', '730', true],
      ['digits_between:1,6', '1234567', false],
      ['digits_between:1,6', '12a', false],
      ['digits_between:1,6', '-1', false],
      ['digits:4', '0420', true],
      ['digits:4', '420', false],
      ['in:recommended,latest', 'latest', true],
      ['in:recommended,latest', 'Latest', false],
      ['in:recommended,latest', 'beta', false],
      ['in:1,2', '1.0', true],
      ['not_in:root,admin', 'root', false],
      ['not_in:root,admin', 'steve', true],
    ]);
  });

  it('alpha rules are Unicode', () => {
    table([
      ['alpha_dash', 'de_dust2', true],
      ['alpha_dash', 'gm-construct', true],
      ['alpha_dash', 'straße_1', true],
      ['alpha_dash', 'de dust', false],
      ['alpha_dash', 'a.b', false],
      ['alpha_dash', 'a/b', false],
      ['alpha_num', 'abc123', true],
      ['alpha_num', 'abc_123', false],
      ['alpha_num', '日本語', true],
      ['alpha', 'abc', true],
      ['alpha', 'abc1', false],
    ]);
  });

  it('regex rules take PCRE delimiters and flags', () => {
    table([
      ['regex:/^([\\w\\d._-]+)(\\.jar)$/', 'server.jar', true],
      ['regex:/^([\\w\\d._-]+)(\\.jar)$/', 'server.zip', false],
      ['regex:/^([\\w\\d._-]+)(\\.jar)$/', '../x.jar', false],
      ['regex:/^(237410)$/', '237410', true],
      ['regex:/^(237410)$/', '237411', false],
      ['regex:/^[a-z]+$/i', 'ABC', true],
      ['regex:/^[a-z]+$/', 'ABC', false],
      ['regex:#^a|b$#', 'b', true],
      ['required|regex:/^(a|b)$/|max:1', 'a', true],
      ['required|regex:/^(a|b)$/|max:1', 'c', false],
      ['not_regex:/root/', 'rooted', false],
      ['nullable|regex:/^[0-9\\.\\-]+$/', '', true],
      ['nullable|regex:/^[0-9\\.\\-]+$/', '1.20.1-47.2.0', true],
      ['nullable|regex:/^[0-9\\.\\-]+$/', '1.20;rm', false],
      ['regex:/^[а-я]+$/u', 'привет', true],
    ]);
  });

  it('leaves to the server what JavaScript would read differently', () => {
    // the server: \w is ASCII without /u, so it refuses; the browser does not guess on a
    // non-ASCII value and says nothing (the dry run answers)
    expect(check('sérver.jar', 'regex:/^([\\w\\d._-]+)(\\.jar)$/')).toBeNull();
    // with /u the server's \w is Unicode, JavaScript's is not: left to the server
    expect(check('sérver.jar', 'regex:/^([\\w\\d._-]+)(\\.jar)$/u')).toBeNull();
    expect(check('anything', 'regex:/^\\w+$/u')).toBeNull();
    // free spacing has no JavaScript form; \A is PCRE's start of text
    expect(check('x', 'regex:/^ a $/x')).toBeNull();
    expect(check('x', 'regex:/\\Aa/')).toBeNull();
  });

  it('non-ASCII rules parse', () => {
    table([
      ['required|in:café,thé', 'thé', true],
      ['required|in:café,thé', 'the', false],
    ]);
    expect(parseRules('é|required').errors).toHaveLength(1);
    expect(parseRules('regex:^[а-я]+$').errors).toHaveLength(1);
    expect(parseRules('ü:é|max:ö').errors.length).toBeGreaterThan(0);
  });

  it('urls', () => {
    table([
      ['url', 'https://example.com/a.jar', true],
      ['url', 'http://10.0.0.1:8080', true],
      ['url', 'ftp://user@host/x', true],
      ['url', 'example.com', false],
      ['url', 'https://', false],
      ['url', 'https://exa mple.com', false],
      ['url', 'https://host:port/', false],
    ]);
  });

  it('bad rules are reported with their position', () => {
    for (const [rules, index, needle] of [
      ['required|strnig', 2, 'unknown rule'],
      ['max', 1, 'one parameter'],
      ['max:x', 1, 'not a number'],
      ['between:5,1', 1, 'greater'],
      ['between:1', 1, 'two parameters'],
      ['regex:^a$', 1, 'delimiters'],
      ['regex:/a/e', 1, 'unsupported flag'],
      ['required|digits_between:a,3', 2, 'not a count'],
      ['string:x', 1, 'no parameter'],
    ] as const) {
      const { errors } = parseRules(rules);
      expect(errors, rules).toHaveLength(1);
      expect(errors[0].index, rules).toBe(index);
      expect(errors[0].message, rules).toContain(needle);
    }
  });

  it('messages name the limit as the API does', () => {
    expect(check('500', 'required|integer|max:128')).toBe('must be at most 128');
    expect(check('x'.repeat(21), 'required|string|max:20')).toBe('must be at most 20 characters');
    expect(check('beta', 'required|in:recommended,latest')).toBe('must be one of: recommended, latest');
    expect(check('', 'required|in:recommended,latest')).toBe('is required');
    expect(check('80', 'required|integer|between:1025,65535')).toBe('must be between 1025 and 65535');
  });

  it('splits at | but not inside a pattern', () => {
    expect(split('required|regex:/^(a|b)$/|max:1')).toEqual(['required', 'regex:/^(a|b)$/', 'max:1']);
    expect(split('regex:(a|(b|c))|min:1')).toEqual(['regex:(a|(b|c))', 'min:1']);
    expect(split('a||b')).toEqual(['a', '', 'b']);
    const set = parseRules('required|regex:/^(a|b)$/|max:1');
    expect(set.rules.map((r) => r.kind)).toEqual(['required', 'regex', 'max']);
    expect(set.required).toBe(true);
  });
});

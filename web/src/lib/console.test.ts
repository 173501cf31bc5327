import { describe, expect, it } from 'vitest';
import { appendLines, commandFrame, consoleUrl, nextBackoff, parseFrame, stripAnsi, terminalLine } from './console';

describe('parseFrame', () => {
  it('reads the server events', () => {
    expect(parseFrame('{"event":"line","data":"hello"}')).toEqual({ event: 'line', data: 'hello' });
    expect(parseFrame('{"event":"phase","data":"Running"}')).toEqual({ event: 'phase', data: 'Running' });
    expect(parseFrame('{"event":"phase","data":null}')).toEqual({ event: 'phase', data: null });
    expect(parseFrame('{"event":"stats","data":{"memoryBytes":5}}')).toEqual({ event: 'stats', data: { memoryBytes: 5 } });
    expect(parseFrame('{"event":"closed","data":"the console ended"}')).toEqual({ event: 'closed', data: 'the console ended' });
    expect(parseFrame('{"event":"error","data":"too many commands: slow down"}')?.event).toBe('error');
  });
  it('drops what is not a frame', () => {
    expect(parseFrame('nope')).toBeNull();
    expect(parseFrame('3')).toBeNull();
    expect(parseFrame('{"event":"other","data":1}')).toBeNull();
  });
});

describe('commandFrame', () => {
  it('is the client event', () => {
    expect(JSON.parse(commandFrame('say "hi"'))).toEqual({ event: 'command', data: 'say "hi"' });
  });
});

describe('consoleUrl', () => {
  it('uses wss on https and carries the ticket and tail', () => {
    const path = '/apis/catalyst.dev/v1alpha1/namespaces/default/gameservers/web/console';
    expect(consoleUrl({ protocol: 'https:', host: '127.0.0.1:7443' }, path, 'ticket_a+b')).toBe(
      `wss://127.0.0.1:7443${path}?ticket=ticket_a%2Bb&tail=200`,
    );
    expect(consoleUrl({ protocol: 'http:', host: 'x' }, '/p', 't', 5)).toBe('ws://x/p?ticket=t&tail=5');
  });
});

describe('nextBackoff', () => {
  it('starts at 1 s, doubles, stops at 30 s', () => {
    const seen: number[] = [];
    let b: number | undefined;
    for (let i = 0; i < 8; i++) seen.push((b = nextBackoff(b)));
    expect(seen).toEqual([1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
  });
});

describe('plain text', () => {
  it('strips colours and other escapes', () => {
    expect(stripAnsi('\x1b[1;32mok\x1b[0m done\r')).toBe('ok done');
    expect(stripAnsi('\x1b]0;title\x07text')).toBe('text');
    expect(stripAnsi('\x1b[2K\x1b[1Gprogress')).toBe('progress');
  });
  it('keeps the last lines only', () => {
    let b: string[] = [];
    for (let i = 0; i < 600; i++) b = appendLines(b, [`\x1b[31mline ${i}\x1b[0m`]);
    expect(b).toHaveLength(500);
    expect(b[0]).toBe('line 100');
    expect(b[499]).toBe('line 599');
  });
  it('ends terminal lines with CRLF and keeps colours', () => {
    expect(terminalLine('\x1b[32ma\x1b[0m')).toBe('\x1b[32ma\x1b[0m\r\n');
    expect(terminalLine('a\nb')).toBe('a\r\nb\r\n');
  });
});

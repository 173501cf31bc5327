// The Console tab: xterm over the console WebSocket. A one-use ticket (POST /auth/v1/tickets)
// opens it, since browsers cannot send the bearer header on a WebSocket; after a close nobody
// asked for, it reconnects with a fresh ticket (1 s, doubling to 30 s). Commands go as
// `{"event":"command"}` frames, with a per-server history walked by the arrow keys.

import { useEffect, useRef, useState, type KeyboardEvent } from 'react';
import { Terminal, type ITheme } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';
import '@xterm/xterm/css/xterm.css';

import { api, ApiError } from '../../api/client';
import { useCan } from '../../api/hooks';
import type { GameServer } from '../../api/types';
import { appendLines, commandFrame, consoleUrl, nextBackoff, parseFrame, terminalLine } from '../../lib/console';
import {
  freshCursor,
  historyDown,
  historyKey,
  historyUp,
  loadHistory,
  pushHistory,
  saveHistory,
  type HistoryCursor,
} from '../../lib/consoleHistory';
import { isDark } from '../../components/theme';
import { cssVar, useDark } from './useDark';

type Conn =
  | { state: 'connecting' }
  | { state: 'connected'; phase?: string | null }
  | { state: 'waiting'; seconds: number; reason?: string }
  | { state: 'failed'; reason: string };

interface TicketAnswer {
  ticket: string;
  path: string;
  expiresAt?: string;
}

const DARK: ITheme = {
  background: '#0f1115',
  foreground: '#e8eaf0',
  cursor: '#e8eaf0',
  selectionBackground: '#3a4257',
};

// the default palette's yellow and cyan are unreadable on white
const LIGHT: ITheme = {
  background: '#fbfbfc',
  foreground: '#1b1f27',
  cursor: '#1b1f27',
  selectionBackground: '#c9d4ea',
  black: '#1b1f27',
  red: '#b42318',
  green: '#157f3b',
  yellow: '#7a5200',
  blue: '#1f5fbf',
  magenta: '#8b2fa8',
  cyan: '#0b6e79',
  white: '#5c6370',
  brightBlack: '#4f5868',
  brightRed: '#c4320a',
  brightGreen: '#137333',
  brightYellow: '#8a5a00',
  brightBlue: '#174ea6',
  brightMagenta: '#9334b0',
  brightCyan: '#0a7a86',
  brightWhite: '#3c4043',
};

function statusText(c: Conn): string {
  switch (c.state) {
    case 'connecting':
      return 'connecting…';
    case 'connected':
      return c.phase ? `connected (server ${c.phase})` : 'connected';
    case 'waiting':
      return `reconnecting in ${c.seconds} s`;
    case 'failed':
      return 'not connected';
  }
}

export default function Console({ gs }: { gs: GameServer }) {
  const ns = gs.metadata.namespace ?? '';
  const name = gs.metadata.name;
  const canCommand = useCan('create', 'gameservers/command', ns, name);
  const dark = useDark();

  const box = useRef<HTMLDivElement>(null);
  const term = useRef<Terminal | null>(null);
  const socket = useRef<WebSocket | null>(null);
  const [conn, setConn] = useState<Conn>({ state: 'connecting' });
  const [closedReason, setClosedReason] = useState<string | null>(null);
  const [serverError, setServerError] = useState<string | null>(null);

  // the plain text of the last lines, flushed at most every 100 ms
  const [text, setText] = useState<string[]>([]);
  const pending = useRef<string[]>([]);
  const flushTimer = useRef<ReturnType<typeof setTimeout> | null>(null);
  const queueText = (line: string) => {
    pending.current.push(line);
    if (flushTimer.current) return;
    flushTimer.current = setTimeout(() => {
      flushTimer.current = null;
      const lines = pending.current;
      pending.current = [];
      setText((old) => appendLines(old, lines));
    }, 100);
  };

  // the terminal: made once, fitted to its box, disposed with the tab
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const t = new Terminal({
      disableStdin: true,
      convertEol: false,
      scrollback: 5000,
      fontFamily: cssVar('--mono', 'monospace'),
      fontSize: 13,
      cursorInactiveStyle: 'none',
      theme: isDark() ? DARK : LIGHT,
    });
    const fit = new FitAddon();
    t.loadAddon(fit);
    t.open(el);
    const refit = () => {
      try {
        fit.fit();
      } catch {
        /* not laid out yet */
      }
    };
    refit();
    const ro = new ResizeObserver(refit);
    ro.observe(el);
    term.current = t;
    return () => {
      ro.disconnect();
      term.current = null;
      t.dispose();
      if (flushTimer.current) clearTimeout(flushTimer.current);
    };
  }, []);

  useEffect(() => {
    if (term.current) term.current.options.theme = dark ? DARK : LIGHT;
  }, [dark]);

  // the connection: ticket, WebSocket, reconnect after a close nobody asked for
  useEffect(() => {
    let stopped = false;
    let backoff: number | undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let tick: ReturnType<typeof setInterval> | undefined;
    let connections = 0;

    const retry = (reason?: string) => {
      if (stopped) return;
      backoff = nextBackoff(backoff);
      let left = Math.round(backoff / 1000);
      setConn({ state: 'waiting', seconds: left, reason });
      tick = setInterval(() => {
        left -= 1;
        if (left > 0) setConn({ state: 'waiting', seconds: left, reason });
      }, 1000);
      timer = setTimeout(() => {
        clearInterval(tick);
        void connect();
      }, backoff);
    };

    const connect = async () => {
      setConn({ state: 'connecting' });
      let ticket: TicketAnswer;
      try {
        ticket = await api<TicketAnswer>('/auth/v1/tickets', { method: 'POST', body: { namespace: ns, name } });
      } catch (e) {
        if (stopped) return;
        const message = e instanceof Error ? e.message : String(e);
        // no ticket for this user: trying again will not help
        if (e instanceof ApiError && (e.code === 401 || e.code === 403 || e.code === 404)) {
          setConn({ state: 'failed', reason: message });
        } else {
          retry(message);
        }
        return;
      }
      if (stopped) return;
      const ws = new WebSocket(consoleUrl(window.location, ticket.path, ticket.ticket, 200));
      socket.current = ws;
      let openedAt = 0;
      let reason: string | undefined;
      ws.onopen = () => {
        openedAt = Date.now();
        connections += 1;
        // the server replays the last lines: start the screen over rather than show them twice
        if (connections > 1) {
          term.current?.reset();
          pending.current = [];
          setText([]);
        }
        setClosedReason(null);
        setConn({ state: 'connected' });
      };
      ws.onmessage = (m) => {
        if (typeof m.data !== 'string') return;
        const f = parseFrame(m.data);
        if (!f) return;
        switch (f.event) {
          case 'line':
            term.current?.write(terminalLine(f.data));
            queueText(f.data);
            break;
          case 'phase':
            setConn({ state: 'connected', phase: f.data });
            break;
          case 'error':
            term.current?.write(terminalLine(`\x1b[31m[catalyst] ${f.data}\x1b[0m`));
            setServerError(f.data);
            break;
          case 'closed':
            reason = f.data;
            setClosedReason(f.data);
            break;
          case 'stats':
            break;
        }
      };
      ws.onclose = (ev) => {
        if (socket.current === ws) socket.current = null;
        if (stopped) return;
        // a connection that lasted starts the backoff over
        if (openedAt && Date.now() - openedAt > 10_000) backoff = undefined;
        const why = reason ?? (ev.reason || (openedAt ? 'the connection closed' : 'the console could not be opened'));
        setClosedReason(why);
        retry(why);
      };
    };

    void connect();
    return () => {
      stopped = true;
      clearTimeout(timer);
      clearInterval(tick);
      const ws = socket.current;
      socket.current = null;
      if (ws) {
        ws.onclose = null;
        ws.onmessage = null;
        ws.close(1000);
      }
    };
  }, [ns, name]);

  return (
    <div>
      <div className="console-status">
        <span className="state" data-state={conn.state} data-testid="console-status">
          {statusText(conn)}
        </span>
        {/* announced once per change of state, not on every second of the countdown */}
        <span className="sr-only" role="status">
          Console {conn.state === 'waiting' ? 'reconnecting' : statusText(conn)}
        </span>
        {closedReason && conn.state !== 'connected' && <span className="muted">Closed: {closedReason}</span>}
        {conn.state === 'failed' && (
          <span role="alert" className="error-text">
            {conn.reason}
          </span>
        )}
      </div>
      <div
        ref={box}
        className="console-term"
        data-dark={dark}
        aria-label="Console output"
        role="region"
        data-testid="console-output"
      />
      <pre className="sr-only" data-testid="console-text">
        {text.join('\n')}
      </pre>
      {canCommand === true && (
        <CommandInput
          ns={ns}
          name={name}
          connected={conn.state === 'connected'}
          onSend={(command) => {
            const ws = socket.current;
            if (!ws || ws.readyState !== WebSocket.OPEN) return false;
            setServerError(null);
            ws.send(commandFrame(command));
            term.current?.write(terminalLine(`\x1b[2m> ${command}\x1b[0m`));
            return true;
          }}
        />
      )}
      {serverError && (
        <div className="alert" role="alert" style={{ marginTop: 8 }}>
          {serverError}
        </div>
      )}
    </div>
  );
}

function CommandInput({
  ns,
  name,
  connected,
  onSend,
}: {
  ns: string;
  name: string;
  connected: boolean;
  onSend: (command: string) => boolean;
}) {
  const key = historyKey(ns, name);
  const [history, setHistory] = useState<string[]>(() => loadHistory(localStorage, key));
  const cursor = useRef<HistoryCursor>(freshCursor(history));
  const [value, setValue] = useState('');
  const [hint, setHint] = useState<string | null>(null);

  const send = () => {
    const command = value;
    if (command.trim() === '') return;
    if (command.length > 4000) {
      setHint('A command is at most 4000 characters.');
      return;
    }
    if (!onSend(command)) {
      setHint('Not connected: the command was not sent.');
      return;
    }
    setHint(null);
    const next = pushHistory(history, command);
    setHistory(next);
    saveHistory(localStorage, key, next);
    cursor.current = freshCursor(next);
    setValue('');
  };

  const onKeyDown = (e: KeyboardEvent<HTMLInputElement>) => {
    if (e.key !== 'ArrowUp' && e.key !== 'ArrowDown') return;
    e.preventDefault();
    const r = e.key === 'ArrowUp' ? historyUp(history, cursor.current, value) : historyDown(history, cursor.current, value);
    cursor.current = r.cursor;
    setValue(r.value);
  };

  return (
    <form
      className="console-command"
      onSubmit={(e) => {
        e.preventDefault();
        send();
      }}
    >
      <label htmlFor="console-command">
        Command
      </label>
      <input
        id="console-command"
        autoComplete="off"
        spellCheck={false}
        placeholder="Command (↑ ↓ for history)"
        value={value}
        onChange={(e) => {
          setValue(e.target.value);
          setHint(null);
        }}
        onKeyDown={onKeyDown}
        aria-describedby={hint ? 'console-command-hint' : undefined}
      />
      <button type="submit" className="primary" disabled={!connected}>
        Send
      </button>
      {hint && (
        <span id="console-command-hint" className="error-text" role="alert">
          {hint}
        </span>
      )}
    </form>
  );
}

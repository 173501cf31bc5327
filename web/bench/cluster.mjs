// The cluster side of the panel benchmark: a real `catalyst server` (no nodelet, SQLite) on a
// free loopback port with a throwaway data directory, API calls over one HTTPS keep-alive agent
// trusting the cluster's CA, NDJSON watches, and the server's RSS and CPU time from /proc.

import { execFileSync, spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent, request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

export const GROUP = '/apis/catalyst.dev/v1alpha1';

/** Where catalyst and catalystctl are: $CATALYST_BIN_DIR, else target/release, else target/debug. */
export function findBinaries(repo) {
  const dirs = process.env.CATALYST_BIN_DIR
    ? [process.env.CATALYST_BIN_DIR]
    : [join(repo, 'target', 'release'), join(repo, 'target', 'debug')];
  for (const d of dirs) {
    const catalyst = join(d, 'catalyst');
    const catalystctl = join(d, 'catalystctl');
    if (existsSync(catalyst) && existsSync(catalystctl)) return { dir: d, catalyst, catalystctl };
  }
  throw new Error(`no catalyst + catalystctl in ${dirs.join(' or ')}: build them (cargo build --release --bin catalyst --bin catalystctl)`);
}

/** Starts `catalyst server` and resolves once it printed its URL. */
export async function startServer(bins) {
  const dir = mkdtempSync('/tmp/catalyst-panel-bench-');
  const log = createWriteStream(join(dir, 'server.log'));
  // no --sftp-listen: it belongs to the in-process nodelet, and clap refuses it without --with-nodelet
  const child = spawn(bins.catalyst, ['server', '--listen', '127.0.0.1:0', '--data-dir', dir], {
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stderr.pipe(log);
  const exited = new Promise((res) => child.once('exit', () => res()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(t);
    }
    log.end();
    if (!process.env.BENCH_KEEP) rmSync(dir, { recursive: true, force: true });
  };
  let line;
  try {
    line = await new Promise((res, rej) => {
      const lines = createInterface({ input: child.stdout });
      let first = true;
      lines.on('line', (l) => {
        log.write(`${l}\n`);
        if (first) {
          first = false;
          res(l);
        }
      });
      child.once('exit', (code) => rej(new Error(`catalyst server exited (${code}) before it listened`)));
    });
  } catch (e) {
    await new Promise((r) => log.end(r));
    try {
      console.error(readFileSync(join(dir, 'server.log'), 'utf8').split('\n').slice(-20).join('\n'));
    } catch {
      /* no log */
    }
    await stop();
    throw e;
  }
  const url = line.trim().split(' ').pop();
  const config = join(dir, 'admin.yaml');
  const token = readFileSync(config, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('token: '))
    .slice('token: '.length)
    .trim();
  const ca = readFileSync(join(dir, 'ca.crt'));
  const ctl = (args, input) =>
    execFileSync(bins.catalystctl, args, { input, env: { ...process.env, CATALYST_CONFIG: config }, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
  return { dir, url, token, ca, pid: child.pid, child, ctl, stop };
}

/** API calls with the admin token over one keep-alive agent (at most `sockets` connections). */
export function client(server, sockets = 16) {
  const agent = new Agent({ keepAlive: true, maxSockets: sockets, ca: server.ca });
  const call = (method, path, body, contentType = 'application/json') =>
    new Promise((resolve, reject) => {
      const data = body === undefined ? undefined : JSON.stringify(body);
      const req = httpsRequest(
        new URL(path, server.url),
        {
          method,
          agent,
          headers: {
            Authorization: `Bearer ${server.token}`,
            ...(data !== undefined ? { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(data) } : {}),
          },
        },
        (res) => {
          const chunks = [];
          res.on('data', (c) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed;
            try {
              parsed = text ? JSON.parse(text) : undefined;
            } catch {
              parsed = text;
            }
            resolve({ status: res.statusCode ?? 0, body: parsed });
          });
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.setTimeout(60_000, () => req.destroy(new Error(`${method} ${path}: timed out`)));
      if (data !== undefined) req.write(data);
      req.end();
    });
  const status = (path, st) => call('PATCH', `${path}/status`, { status: st }, 'application/merge-patch+json');
  return { call, status, close: () => agent.destroy() };
}

/**
 * Follows `path?watch=true` from `resourceVersion`, calling `onEvent` per event, on its own
 * connection; returns a function that ends it.
 */
export function watch(server, path, resourceVersion, onEvent) {
  const u = new URL(path, server.url);
  u.searchParams.set('watch', 'true');
  u.searchParams.set('resourceVersion', String(resourceVersion));
  u.searchParams.set('timeoutSeconds', '3600');
  let buf = '';
  const req = httpsRequest(u, { ca: server.ca, headers: { Authorization: `Bearer ${server.token}` } }, (res) => {
    res.setEncoding('utf8');
    res.on('data', (chunk) => {
      buf += chunk;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (line) onEvent(JSON.parse(line));
      }
    });
    res.on('error', () => undefined);
  });
  req.on('error', () => undefined);
  req.end();
  return () => req.destroy();
}

/** The resident memory of `pid` in MiB (VmRSS). */
export function rssMib(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** User + system CPU seconds `pid` used so far (clock ticks of 1/100 s). */
export function cpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

export function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))];
}

export function median(xs) {
  return percentile([...xs].sort((a, b) => a - b), 0.5);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

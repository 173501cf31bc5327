// The panel's dashboard benchmark (issue 15): first load of the dashboard (bytes shipped, time to
// interactive in headless Chromium) on an empty cluster and with 1,000 GameServers, then the
// dashboard open while a flipper writes 100 status changes per second: frame times, long tasks,
// watch updates shown against writes sent, the API server's RSS. It prints figures; targets are
// reported, never enforced.
//
// Run it through scripts/bench-panel (checks web/dist and the binaries first). Environment:
//   CATALYST_BIN_DIR  catalyst + catalystctl (default target/release, else target/debug)
//   CHROMIUM          the browser (default /usr/bin/chromium)
//   BENCH_SERVERS     GameServers (1000)      BENCH_NODES    simulated nodes (10)
//   BENCH_RATE        status writes/s (100)   BENCH_SECONDS  flipper duration (30)
//   BENCH_RUNS        first-load runs (5)     BENCH_KEEP     keep the data directory
//
// The cluster: `catalyst server` without a nodelet (SQLite). Nodes are created and heartbeat
// through their status like cli/benches/control_plane.rs, the scheduler binds servers to them,
// and fake nodelets here move each bound server Scheduled → Starting → Running through
// PATCH …/status. The flipper then cycles Running → Crashed → Starting → Running (legal status
// writes by schemas/src/lifecycle.rs), one server after another, so at 100 writes/s 100 servers
// change phase every second.

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { brotliCompressSync, constants as zlib } from 'node:zlib';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

import { client, cpuSeconds, findBinaries, GROUP, median, percentile, rssMib, sleep, startServer, watch } from './cluster.mjs';
import { countBytes, initScript, startProbes, stopProbes, sweepPhases } from './page.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..', '..');
const env = (name, dflt) => {
  const v = Number(process.env[name]);
  return Number.isFinite(v) && v > 0 ? v : dflt;
};
const SERVERS = env('BENCH_SERVERS', 1000);
const NODES = env('BENCH_NODES', 10);
const RATE = env('BENCH_RATE', 100);
const SECONDS = env('BENCH_SECONDS', 30);
const RUNS = env('BENCH_RUNS', 5);
const USER = 'bench';
const PASSWORD = 'a long enough bench password';
const NS = 'default';
const VIEWPORT = { width: 1280, height: 800 };
// as web/playwright.config.ts: as root in a closed network, no sandbox, no calls home
const ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
];

const log = (...a) => console.error(`[bench ${new Date().toISOString().slice(11, 19)}]`, ...a);
const kb = (n) => `${(n / 1024).toFixed(1)} KiB`;
const ms = (n) => (Number.isFinite(n) ? `${n.toFixed(0)} ms` : 'n/a');

/** Signs `bench` in through the login form; the session the panel stored. */
async function signIn(browser, url) {
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: VIEWPORT, baseURL: url });
  try {
    const page = await ctx.newPage();
    await page.goto('/');
    await page.getByLabel('User name').fill(USER);
    await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Game servers' }).waitFor({ timeout: 60_000 });
    const session = await page.evaluate(() => localStorage.getItem('catalyst.session'));
    if (!session) throw new Error('signed in, but no catalyst.session in localStorage');
    return session;
  } finally {
    await ctx.close();
  }
}

/** A fresh context holding `session`, with the probes installed; the page not yet loaded. */
async function openContext(browser, url, session, expected, extraHTTPHeaders) {
  const ctx = await browser.newContext({
    ignoreHTTPSErrors: true,
    viewport: VIEWPORT,
    baseURL: url,
    extraHTTPHeaders,
    storageState: { cookies: [], origins: [{ origin: new URL(url).origin, localStorage: [{ name: 'catalyst.session', value: session }] }] },
  });
  await ctx.addInitScript(initScript, expected);
  const page = await ctx.newPage();
  const bytes = await countBytes(ctx, page);
  return { ctx, page, bytes };
}

/** One first load of the dashboard: TTI and bytes. The context is closed unless `keep`. */
async function firstLoad(browser, url, session, expected, { keep = false, identity = false } = {}) {
  const o = await openContext(browser, url, session, expected, identity ? { 'Accept-Encoding': 'identity' } : undefined);
  await o.page.goto('/', { waitUntil: 'commit' });
  const t = await Promise.race([
    o.page.evaluate(() => window.__bench.tti),
    sleep(180_000).then(() => {
      throw new Error(`the dashboard did not show "${expected} of ${expected}" within 180 s`);
    }),
  ]);
  // requests still finishing right after TTI (e.g. a metrics poll) are counted when done
  await sleep(300);
  const b = o.bytes.snapshot();
  const result = { ...t, ...b };
  if (!keep) {
    await o.bytes.detach();
    await o.ctx.close();
    return { result };
  }
  return { result, open: o };
}

async function firstLoads(browser, url, session, expected, label) {
  const runs = [];
  for (let i = 0; i < RUNS; i++) {
    const { result } = await firstLoad(browser, url, session, expected);
    log(`${label} run ${i + 1}: ready ${ms(result.ready)}, TTI ${ms(result.tti)}, ${kb(sum(result.totals, 'wire'))} on the wire`);
    runs.push(result);
  }
  const { result: identity } = await firstLoad(browser, url, session, expected, { identity: true });
  return { runs, identity };
}

const KINDS = ['js', 'css', 'html', 'api', 'other'];
const sum = (totals, field, kinds = KINDS) => kinds.reduce((a, k) => a + (totals[k]?.[field] ?? 0), 0);

/** What the panel files a load fetched weigh as in web/dist, and brotli (quality 11) of them. */
function distSizes(paths) {
  let raw = 0;
  let br = 0;
  for (const p of paths) {
    const file = join(repo, 'web', 'dist', p === '/' || !p.includes('.') ? 'index.html' : p.slice(1));
    if (!existsSync(file)) continue;
    const data = readFileSync(file);
    raw += data.length;
    br += brotliCompressSync(data, { params: { [zlib.BROTLI_PARAM_QUALITY]: 11, [zlib.BROTLI_PARAM_SIZE_HINT]: data.length } }).length;
  }
  return { raw, br };
}

function summariseLoads({ runs, identity }) {
  const byKind = {};
  for (const k of KINDS) {
    byKind[k] = {
      wire: median(runs.map((r) => r.totals[k]?.wire ?? 0)),
      decoded: median(runs.map((r) => r.totals[k]?.decoded ?? 0)),
      requests: median(runs.map((r) => r.totals[k]?.requests ?? 0)),
    };
  }
  return {
    ready: median(runs.map((r) => r.ready)),
    tti: median(runs.map((r) => r.tti)),
    ttiMin: Math.min(...runs.map((r) => r.tti)),
    ttiMax: Math.max(...runs.map((r) => r.tti)),
    longTasks: median(runs.map((r) => r.longTasks)),
    byKind,
    wire: median(runs.map((r) => sum(r.totals, 'wire'))),
    decoded: median(runs.map((r) => sum(r.totals, 'decoded'))),
    assetsWire: median(runs.map((r) => sum(r.totals, 'wire', ['js', 'css', 'html', 'other']))),
    assetsDecoded: median(runs.map((r) => sum(r.totals, 'decoded', ['js', 'css', 'html', 'other']))),
    compressed: `${runs[0].compressed} of ${runs[0].responses}`,
    identityAssetsWire: sum(identity.totals, 'wire', ['js', 'css', 'html', 'other']),
    identityCompressed: `${identity.compressed} of ${identity.responses}`,
    dist: distSizes(runs[0].files),
  };
}

/** Creates the nodes and keeps them heartbeating; returns the stop function. */
async function startNodes(api) {
  const beat = async () => {
    await Promise.all(
      Array.from({ length: NODES }, async (_, n) => {
        const r = await api.status(`${GROUP}/nodes/node-${n}`, {
          state: 'Ready',
          lastHeartbeatTime: new Date().toISOString(),
          allocatable: { cpu: '64', memory: '256Gi', disk: '2Ti' },
        });
        if (r.status !== 200) throw new Error(`node-${n} heartbeat: HTTP ${r.status} ${JSON.stringify(r.body)}`);
      }),
    );
  };
  for (let n = 0; n < NODES; n++) {
    const r = await api.call('POST', `${GROUP}/nodes`, {
      apiVersion: 'catalyst.dev/v1alpha1',
      kind: 'Node',
      metadata: { name: `node-${n}` },
      spec: { address: `127.0.1.${(n % 250) + 1}`, portRange: { min: 7000, max: 7999 } },
    });
    if (r.status !== 201) throw new Error(`create node-${n}: HTTP ${r.status} ${JSON.stringify(r.body)}`);
  }
  await beat();
  let stopped = false;
  const timer = setInterval(() => {
    if (!stopped) beat().catch((e) => log(`heartbeat: ${e.message}`));
  }, 10_000);
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}

/** Runs `jobs` (async functions) with at most `n` at a time. */
async function pool(n, jobs) {
  let i = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (i < jobs.length) {
        const j = jobs[i++];
        await j();
      }
    }),
  );
}

/** Creates the GameServers; fake nodelets take each from Scheduled to Running. */
async function populate(server, api) {
  const path = `${GROUP}/namespaces/${NS}/gameservers`;
  const list = await api.call('GET', path);
  const rv = list.body?.metadata?.resourceVersion ?? '0';
  const handled = new Set();
  const running = new Set();
  const queue = [];
  let wake = null;
  let failures = 0;
  const stopWatch = watch(server, path, rv, (ev) => {
    const o = ev.object;
    const name = o?.metadata?.name;
    if (!name || ev.type === 'BOOKMARK' || ev.type === 'ERROR') return;
    const phase = o.status?.phase;
    if (phase === 'Running') running.add(name);
    if (phase === 'Scheduled' && !handled.has(name)) {
      handled.add(name);
      queue.push(name);
      wake?.();
    }
  });
  let done = false;
  const reporter = async () => {
    for (;;) {
      if (done) return;
      const name = queue.shift();
      if (name === undefined) {
        await new Promise((r) => {
          wake = r;
          setTimeout(r, 200);
        });
        continue;
      }
      const p = `${path}/${name}`;
      const a = await api.status(p, { phase: 'Starting' });
      const b = await api.status(p, { phase: 'Running', conditions: [{ type: 'Ready', status: 'True', reason: 'Simulated' }] });
      if (a.status !== 200 || b.status !== 200) {
        failures += 1;
        if (failures <= 5) log(`fake nodelet ${name}: HTTP ${a.status}/${b.status} ${JSON.stringify(b.body).slice(0, 200)}`);
      }
    }
  };
  const reporters = Array.from({ length: 8 }, reporter);
  const t0 = Date.now();
  const creates = Array.from({ length: SERVERS }, (_, i) => async () => {
    const r = await api.call('POST', path, {
      apiVersion: 'catalyst.dev/v1alpha1',
      kind: 'GameServer',
      metadata: { name: `gs-${String(i).padStart(4, '0')}` },
      spec: {
        image: 'busybox',
        restartPolicy: 'Never',
        resources: { cpu: '100m', memory: '64Mi' },
        ports: [{ containerPort: 25565, protocol: 'TCPUDP' }],
      },
    });
    if (r.status !== 201) throw new Error(`create gs-${i}: HTTP ${r.status} ${JSON.stringify(r.body)}`);
  });
  await pool(8, creates);
  const created = (Date.now() - t0) / 1000;
  log(`${SERVERS} GameServers created in ${created.toFixed(1)} s`);
  const deadline = Date.now() + 60_000 + SERVERS * 600;
  let shown = 0;
  while (running.size < SERVERS) {
    if (Date.now() > deadline) {
      done = true;
      stopWatch();
      throw new Error(`only ${running.size} of ${SERVERS} Running in time (${handled.size} were Scheduled)`);
    }
    if (Date.now() - shown > 5000) {
      shown = Date.now();
      log(`${handled.size} Scheduled, ${running.size} Running`);
    }
    await sleep(200);
  }
  done = true;
  wake?.();
  await Promise.all(reporters);
  stopWatch();
  return { created, allRunning: (Date.now() - t0) / 1000, failures };
}

/**
 * Writes RATE status changes per second for SECONDS, server after server: each write moves one
 * server a step on Running → Crashed → Starting → Running. At most 8 writes in flight; a write
 * that cannot start on time starts as soon as a slot frees (the achieved rate is reported).
 */
async function flip(api, names) {
  const total = Math.round(RATE * SECONDS);
  const steps = [
    { phase: 'Crashed', reason: 'Simulated', message: 'bench flipper', lastExit: { exitCode: 1, finishedAt: null } },
    { phase: 'Starting', reason: null, message: null },
    { phase: 'Running', reason: null, message: null },
  ];
  const writes = [];
  let next = 0;
  const t0 = Date.now();
  const writer = async () => {
    for (;;) {
      const i = next++;
      if (i >= total) return;
      const due = t0 + (i * 1000) / RATE;
      const wait = due - Date.now();
      if (wait > 0) await sleep(wait);
      const name = names[i % names.length];
      const step = steps[Math.floor(i / names.length) % steps.length];
      const st = { ...step };
      if (st.lastExit) st.lastExit = { exitCode: 1, finishedAt: new Date().toISOString() };
      const sent = Date.now();
      const r = await api.status(`${GROUP}/namespaces/${NS}/gameservers/${name}`, st);
      writes.push({ key: `${NS}/${name}`, phase: step.phase, sent, done: Date.now(), code: r.status });
      if (r.status !== 200 && writes.filter((w) => w.code !== 200).length <= 5) {
        log(`flip ${name} → ${step.phase}: HTTP ${r.status} ${JSON.stringify(r.body).slice(0, 200)}`);
      }
    }
  };
  await Promise.all(Array.from({ length: 8 }, writer));
  return { writes, seconds: (Date.now() - t0) / 1000 };
}

function table(rows) {
  const w = Math.max(...rows.filter((r) => r[1] !== undefined).map((r) => r[0].length));
  return rows.map(([k, v]) => (v === undefined ? `\n${k}` : `  ${k.padEnd(w)}  ${v}`)).join('\n');
}

async function main() {
  const dist = join(repo, 'web', 'dist');
  if (!existsSync(join(dist, 'index.html'))) throw new Error('web/dist is missing: build the panel (./scripts/build-web)');
  const twins = readdirSync(join(dist, 'assets')).filter((f) => f.endsWith('.br')).length;
  const bins = findBinaries(repo);
  const release = !bins.dir.includes(`${join('target', 'debug')}`);
  log(`binaries: ${bins.dir} (${release ? 'release or custom' : 'DEBUG: figures are not representative'})`);
  log(`web/dist: ${twins} .br twins${twins ? '' : ' (none: compressed and uncompressed figures will match; ./scripts/build-web writes them)'}`);
  const server = await startServer(bins);
  let browser;
  let stopNodes = () => undefined;
  let api;
  const cleanup = async () => {
    stopNodes();
    await browser?.close().catch(() => undefined);
    api?.close();
    await server.stop();
  };
  const onSignal = (sig) => {
    log(`${sig}: cleaning up`);
    cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    log(`catalyst server at ${server.url} (pid ${server.pid}, data ${server.dir})`);
    server.ctl(['create', 'user', USER, '--password-stdin'], `${PASSWORD}\n`);
    server.ctl(
      ['apply', '-f', '-'],
      JSON.stringify({
        apiVersion: 'catalyst.dev/v1alpha1',
        kind: 'ClusterRoleBinding',
        metadata: { name: 'bench-admin' },
        spec: { roleRef: 'admin', subjects: [{ kind: 'User', name: USER }] },
      }),
    );
    api = client(server, 16);
    browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', headless: true, args: ARGS });
    log(`browser: ${browser.version()}`);
    const rssEmpty = rssMib(server.pid);

    // 1. first load, empty cluster
    let session = await signIn(browser, server.url);
    const empty = summariseLoads(await firstLoads(browser, server.url, session, 0, 'empty'));

    // 2. SERVERS GameServers on NODES nodes, all Running
    stopNodes = await startNodes(api);
    const pop = await populate(server, api);
    const rssLoaded = rssMib(server.pid);
    session = await signIn(browser, server.url);
    const full = summariseLoads(await firstLoads(browser, server.url, session, SERVERS, `${SERVERS} servers`));

    // 3. under load: the dashboard open while the flipper writes
    session = await signIn(browser, server.url);
    const { open } = await firstLoad(browser, server.url, session, SERVERS, { keep: true });
    await open.page.evaluate(startProbes);
    const names = Array.from({ length: SERVERS }, (_, i) => `gs-${String(i).padStart(4, '0')}`);
    const rssBefore = rssMib(server.pid);
    const cpuBefore = cpuSeconds(server.pid);
    log(`flipper: ${RATE}/s for ${SECONDS} s`);
    const flipped = await flip(api, names);
    const cpuDuring = cpuSeconds(server.pid) - cpuBefore;
    await sleep(3000);
    const probes = await open.page.evaluate(stopProbes);
    const rssAfter = rssMib(server.pid);
    const store = await api.call('GET', `${GROUP}/namespaces/${NS}/gameservers`);
    const storePhase = new Map((store.body?.items ?? []).map((g) => [`${g.metadata.namespace}/${g.metadata.name}`, g.status?.phase ?? 'Pending']));
    const shown = await open.page.evaluate(sweepPhases);
    await open.bytes.detach();
    await open.ctx.close();

    // figures of the load phase
    const frames = probes.frames.filter((f) => f > 0).sort((a, b) => a - b);
    const ok = flipped.writes.filter((w) => w.code === 200);
    const writeLat = ok.map((w) => w.done - w.sent).sort((a, b) => a - b);
    const watched = probes.renderedAtStart.filter((k) => probes.renderedAtEnd.includes(k));
    const watchedSet = new Set(watched);
    const expectedChanges = ok.filter((w) => watchedSet.has(w.key));
    const seenChanges = probes.changes.filter(([k]) => watchedSet.has(k));
    // write sent → phase cell changed, for the rows on screen
    const lat = [];
    for (const [k, phase, t] of seenChanges) {
      const w = expectedChanges.filter((x) => x.key === k && x.phase === phase && x.sent <= t).pop();
      if (w) lat.push(t - w.sent);
    }
    lat.sort((a, b) => a - b);
    let match = 0;
    const mismatches = [];
    for (const [k, p] of storePhase) {
      if (shown[k] === p) match += 1;
      else if (mismatches.length < 5) mismatches.push(`${k}: page ${shown[k] ?? 'absent'}, store ${p}`);
    }
    const p95 = percentile(frames, 0.95);
    const maxFrame = frames.length ? frames[frames.length - 1] : NaN;
    const ltTotal = probes.longTasks.reduce((a, [, d]) => a + d, 0);

    const loadRows = (label, s) => [
      [`First load, ${label} (median of ${RUNS} fresh contexts)`],
      ['time to rows shown', ms(s.ready)],
      ['time to interactive', `${ms(s.tti)} (min ${ms(s.ttiMin)}, max ${ms(s.ttiMax)}; ${s.longTasks} long tasks before it)`],
      ['JS on the wire', `${kb(s.byKind.js.wire)} (${kb(s.byKind.js.decoded)} decoded, ${s.byKind.js.requests} files)`],
      ['CSS on the wire', `${kb(s.byKind.css.wire)} (${kb(s.byKind.css.decoded)} decoded, ${s.byKind.css.requests} files)`],
      ['HTML on the wire', `${kb(s.byKind.html.wire)} (${kb(s.byKind.html.decoded)} decoded)`],
      ['other (fonts, icons)', `${kb(s.byKind.other.wire)} (${s.byKind.other.requests} files)`],
      ['API answers', `${kb(s.byKind.api.wire)} (${kb(s.byKind.api.decoded)} decoded, ${s.byKind.api.requests} requests)`],
      ['panel files, compressed', `${kb(s.assetsWire)} (responses compressed: ${s.compressed})`],
      ['panel files, identity', `${kb(s.identityAssetsWire)} (Accept-Encoding: identity; compressed: ${s.identityCompressed})`],
      ['same files in web/dist', `${kb(s.dist.raw)}, brotli q11 ${kb(s.dist.br)} (what .br twins would ship)`],
      ['everything on the wire', kb(s.wire)],
    ];
    const rows = [
      ['Setup'],
      ['catalyst binaries', `${bins.dir}${release ? '' : ' (debug build: slower than release)'}`],
      ['browser', `${browser.version()} headless, ${VIEWPORT.width}x${VIEWPORT.height}`],
      ['cluster', `${NODES} simulated nodes, ${SERVERS} GameServers, SQLite, no nodelet`],
      ['created / all Running', `${pop.created.toFixed(1)} s / ${pop.allRunning.toFixed(1)} s (${pop.failures} fake-nodelet failures)`],
      ...loadRows('empty cluster', empty),
      ...loadRows(`${SERVERS} GameServers`, full),
      [`Under load (dashboard open, ${SERVERS} rows listed)`],
      ['status writes', `${ok.length} of ${flipped.writes.length} accepted in ${flipped.seconds.toFixed(1)} s (${(flipped.writes.length / flipped.seconds).toFixed(0)}/s; target ${RATE}/s)`],
      ['write latency', `p50 ${ms(percentile(writeLat, 0.5))}, p99 ${ms(percentile(writeLat, 0.99))}`],
      ['frames', `${frames.length} in ${probes.seconds.toFixed(1)} s`],
      ['frame time', `p50 ${ms(percentile(frames, 0.5))}, p95 ${ms(p95)}, max ${ms(maxFrame)}`],
      ['p95 < 50 ms (issue target)', p95 < 50 ? 'yes' : 'NO'],
      ['max < 100 ms (plan guess)', maxFrame < 100 ? 'yes' : 'NO'],
      ['long tasks (>50 ms)', `${probes.longTasks.length}, ${ms(ltTotal)} in all`],
      ['rows on screen throughout', `${watched.length}`],
      ['their writes shown', `${seenChanges.length} phase changes seen of ${expectedChanges.length} writes sent to them`],
      ['write → cell changed', `p50 ${ms(percentile(lat, 0.5))}, p95 ${ms(percentile(lat, 0.95))}, max ${ms(lat[lat.length - 1])}`],
      ['rows remounted', `${probes.remounts} (should be ~0 without scrolling)`],
      ['final phases, page = store', `${match} of ${storePhase.size} rows${mismatches.length ? ` (e.g. ${mismatches.join('; ')})` : ''}`],
      ['server CPU during writes', `${cpuDuring.toFixed(1)} s over ${flipped.seconds.toFixed(1)} s`],
      ['server RSS', `empty ${rssEmpty.toFixed(1)} MiB, ${SERVERS} servers ${rssLoaded.toFixed(1)} MiB, before writes ${rssBefore.toFixed(1)} MiB, after ${rssAfter.toFixed(1)} MiB`],
    ];
    console.log(`\nPanel dashboard benchmark (web/bench/dashboard.mjs)${table(rows)}\n`);
  } finally {
    await cleanup();
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}

main().catch((e) => {
  console.error(`bench-panel: ${e?.stack ?? e}`);
  process.exitCode = 1;
});

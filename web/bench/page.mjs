// The browser side of the panel benchmark: what runs in the page (long tasks, the moment the
// dashboard shows what it should, frame times, phase cells changing) and the byte counts of a
// load read from the DevTools protocol. Nothing of the app is wrapped: only the DOM and the
// browser's own performance entries are read.

/**
 * Runs before the panel's scripts in every document (addInitScript): records long tasks, the
 * moment `gs-count` reads "N of N" (with a row when N > 0), and resolves `__bench.tti` at the
 * first moment after that which is followed by 500 ms without a long task.
 */
export function initScript(expected) {
  const B = { lt: [], readyAt: null };
  window.__bench = B;
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) B.lt.push([e.startTime, e.duration]);
  }).observe({ type: 'longtask', buffered: true });
  const want = `${expected} of ${expected}`;
  const check = () => {
    if (B.readyAt !== null) return;
    const c = document.querySelector('[data-testid="gs-count"]');
    if (!c || c.textContent.trim() !== want) return;
    if (expected > 0 && !document.querySelector('[data-testid^="gs-row-"]')) return;
    B.readyAt = performance.now();
    mo.disconnect();
  };
  const mo = new MutationObserver(check);
  mo.observe(document, { childList: true, subtree: true, characterData: true });
  /** TTI: from readyAt, pushed past every long task that starts within 500 ms of it. */
  B.ttiAt = () => {
    if (B.readyAt === null) return null;
    let t = B.readyAt;
    for (const [s, d] of [...B.lt].sort((a, b) => a[0] - b[0])) {
      if (s + d > t && s < t + 500) t = s + d;
    }
    // long-task entries arrive a little late: wait 100 ms more than the quiet window
    return performance.now() >= t + 600 ? t : null;
  };
  B.tti = new Promise((resolve) => {
    const tick = () => {
      const t = B.ttiAt();
      if (t !== null) resolve({ tti: t, ready: B.readyAt, longTasks: B.lt.filter(([s]) => s < t).length });
      else setTimeout(tick, 50);
    };
    tick();
  });
}

/** Starts the under-load probes in the page: rAF frame deltas, long tasks, phase cells changing. */
export function startProbes() {
  const B = window.__bench;
  B.probeStart = performance.now();
  B.frames = [];
  B.changes = [];
  B.running = true;
  let last = null;
  const frame = (t) => {
    if (last !== null) B.frames.push(t - last);
    last = t;
    if (B.running) requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);
  const rowsNow = () =>
    [...document.querySelectorAll('tr[data-testid^="gs-row-"]')].map((tr) => tr.dataset.testid.slice('gs-row-'.length));
  B.renderedAtStart = rowsNow();
  B.rowsNow = rowsNow;
  const shown = new Map();
  for (const tr of document.querySelectorAll('tr[data-testid^="gs-row-"]')) {
    shown.set(tr.dataset.testid.slice('gs-row-'.length), tr.querySelector('[data-testid="phase"]')?.dataset.phase);
  }
  B.remounts = 0;
  const table = document.querySelector('table[aria-label="Game servers"]');
  B.mo = new MutationObserver((records) => {
    const now = performance.timeOrigin + performance.now();
    for (const r of records) {
      if (r.type === 'childList') {
        B.remounts += r.addedNodes.length;
        continue;
      }
      const el = r.target;
      const tr = el.closest && el.closest('tr[data-testid^="gs-row-"]');
      if (!tr) continue;
      const key = tr.dataset.testid.slice('gs-row-'.length);
      const phase = el.dataset.phase;
      if (shown.get(key) !== phase) {
        shown.set(key, phase);
        B.changes.push([key, phase, now]);
      }
    }
  });
  B.mo.observe(table, { subtree: true, attributes: true, attributeFilter: ['data-phase'], childList: true });
}

/** Stops the probes and returns what they saw. */
export function stopProbes() {
  const B = window.__bench;
  B.running = false;
  B.mo.disconnect();
  return {
    frames: B.frames,
    longTasks: B.lt.filter(([s]) => s >= B.probeStart),
    changes: B.changes,
    renderedAtStart: B.renderedAtStart,
    renderedAtEnd: B.rowsNow(),
    remounts: B.remounts,
    seconds: (performance.now() - B.probeStart) / 1000,
  };
}

/** Scrolls the virtualised table top to bottom and returns the phase every row showed. */
export async function sweepPhases() {
  const wrap = document.querySelector('.table-wrap');
  const seen = {};
  const settle = () => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(r, 30))));
  wrap.scrollTop = 0;
  await settle();
  for (let i = 0; i < 10_000; i++) {
    for (const tr of wrap.querySelectorAll('tr[data-testid^="gs-row-"]')) {
      seen[tr.dataset.testid.slice('gs-row-'.length)] = tr.querySelector('[data-testid="phase"]')?.dataset.phase;
    }
    if (wrap.scrollTop + wrap.clientHeight >= wrap.scrollHeight - 1) break;
    wrap.scrollTop += Math.max(100, Math.floor(wrap.clientHeight * 0.8));
    await settle();
  }
  wrap.scrollTop = 0;
  return seen;
}

/**
 * Counts the bytes of a page's loads over CDP: per finished request its wire size
 * (Network.loadingFinished encodedDataLength, headers included) and its decoded body size (sum
 * of Network.dataReceived dataLength), by kind: JS, CSS, HTML, API (fetch/XHR) and other.
 */
export async function countBytes(context, page) {
  const cdp = await context.newCDPSession(page);
  const reqs = new Map();
  const totals = {};
  let compressed = 0;
  let responses = 0;
  const files = new Set();
  const kindOf = (type, url) => {
    if (type === 'Script') return 'js';
    if (type === 'Stylesheet') return 'css';
    if (type === 'Document') return 'html';
    if (type === 'Fetch' || type === 'XHR') return 'api';
    if (/\.js(\?|$)/.test(url)) return 'js';
    return 'other';
  };
  cdp.on('Network.requestWillBeSent', (e) => reqs.set(e.requestId, { url: e.request.url, type: e.type, decoded: 0 }));
  cdp.on('Network.responseReceived', (e) => {
    const r = reqs.get(e.requestId);
    if (!r) return;
    r.type = e.type ?? r.type;
    const h = Object.fromEntries(Object.entries(e.response.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v]));
    r.encoding = h['content-encoding'];
  });
  cdp.on('Network.dataReceived', (e) => {
    const r = reqs.get(e.requestId);
    if (r) r.decoded += e.dataLength;
  });
  cdp.on('Network.loadingFinished', (e) => {
    const r = reqs.get(e.requestId);
    if (!r) return;
    const k = kindOf(r.type, r.url);
    totals[k] ??= { wire: 0, decoded: 0, requests: 0 };
    totals[k].wire += e.encodedDataLength;
    totals[k].decoded += r.decoded;
    totals[k].requests += 1;
    if (k !== 'api') {
      files.add(new URL(r.url).pathname);
      responses += 1;
      if (r.encoding) compressed += 1;
    }
  });
  await cdp.send('Network.enable');
  return {
    snapshot: () => ({ totals: structuredClone(totals), compressed, responses, files: [...files] }),
    detach: () => cdp.detach().catch(() => undefined),
  };
}

// Runs the browser tests: Debian's chromium driven by playwright-core,
// against real halley processes. Usage:
//
//   node browsertest/run.mjs [name-substring ...]
//
// Env: CHROMIUM (default /usr/bin/chromium), HALLEY_BIN (default
// bin/halley), BROWSER_JOBS (tests at once, default 3). Closes with one
// line: "browser: N passed, M failed, K skipped".
import { chromium } from 'playwright-core';
import { readdirSync } from 'node:fs';
import { Edge, Halley, Site } from './harness.mjs';
import { Nginx, tls } from './nginx.mjs';

// Every *.test.mjs here exports its tests as `tests`: [{name, fn(t)}].
const all = [];
for (const f of readdirSync(new URL('.', import.meta.url)).sort()) {
  if (f.endsWith('.test.mjs')) all.push(...(await import(`./${f}`)).tests);
}
const filters = process.argv.slice(2);
const selected = all.filter((t) => !filters.length || filters.some((f) => t.name.includes(f)));
const jobs = Number(process.env.BROWSER_JOBS || 3);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    // Quiet on a closed network: no background lookups, updates or sync.
  args: [
    '--no-sandbox',
    '--disable-dev-shm-usage',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    // The nginx tests' throw-away certificate (nginx.mjs): trusted by its
    // key alone, not every certificate error ignored.
    ...(tls ? [`--ignore-certificate-errors-spki-list=${tls.spki}`] : []),
  ],
});
const site = await new Site().start();

// run gives one test its own browser context (cookies), servers and proxies,
// and tears them down whatever happens.
async function run(test) {
  const owned = [];
  const context = await browser.newContext();
  const consoleLines = [];
  const t = {
    site,
    context,
    async halley(args) {
      const h = new Halley(args);
      owned.push(h);
      return h.start();
    },
    async edge(h, mode) {
      const e = new Edge(h, mode);
      owned.push(e);
      return e.start();
    },
    // nginx starts deploy/nginx.conf in front of h (nginx.mjs).
    async nginx(h) {
      const n = new Nginx(h);
      owned.push(n);
      return n.start();
    },
    // page opens html (served by the site origin) in a new tab. Its
    // webSockets are every WebSocket the page opened, from the first: a
    // page's script may open one before goto returns, where a
    // waitForEvent('websocket') made after it would wait for good.
    async page(html) {
      const p = await context.newPage();
      p.on('console', (m) => consoleLines.push(`[console.${m.type()}] ${m.text()}`));
      p.on('pageerror', (e) => consoleLines.push(`[pageerror] ${e.message}`));
      p.webSockets = [];
      p.on('websocket', (ws) => p.webSockets.push(ws));
      await p.goto(site.add(html));
      return p;
    },
  };
  const started = Date.now();
  try {
    await test.fn(t);
    return { ok: true, ms: Date.now() - started };
  } catch (e) {
    const logs = owned.filter((o) => o instanceof Halley).map((h) => h.log.slice(-1500));
    for (const n of owned.filter((o) => o instanceof Nginx)) logs.push('nginx: ' + n.log + n.errorLog());
    return { ok: false, ms: Date.now() - started, err: e, consoleLines, logs };
  } finally {
    await context.close().catch(() => {});
    for (const o of owned.reverse()) await o.cleanup().catch(() => {});
  }
}

let passed = 0,
  failed = 0;
const queue = [...selected];
async function worker() {
  for (let test; (test = queue.shift()); ) {
    const r = await run(test);
    if (r.ok) {
      passed++;
      console.log(`--- PASS ${test.name} (${(r.ms / 1000).toFixed(1)}s)`);
    } else {
      failed++;
      console.log(`--- FAIL ${test.name} (${(r.ms / 1000).toFixed(1)}s)\n    ${String(r.err && r.err.stack).split('\n').join('\n    ')}`);
      for (const l of r.consoleLines.slice(-20)) console.log('    ' + l);
      for (const l of r.logs) console.log('    halley log tail:\n      ' + l.trim().split('\n').join('\n      '));
    }
  }
}
await Promise.all(Array.from({ length: jobs }, worker));
await browser.close();
await site.cleanup();
console.log(`browser: ${passed} passed, ${failed} failed, 0 skipped`);
process.exit(failed ? 1 : 0);

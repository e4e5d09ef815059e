// The browser tests' harness: real halley processes, an "edge" proxy in
// front of each (it can block WebSocket or SSE, strip CORS, or freeze
// live connections), a "site" origin serving the test pages (so every
// page is cross-origin to the API, like a customer's site), and helpers to
// write, push and wait. Nothing here fakes the server: the proxy forwards
// bytes to the real binary.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const halleyBin = process.env.HALLEY_BIN || join(root, 'bin', 'halley');

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const md5 = (s) => createHash('md5').update(s, 'utf8').digest('hex');

// checkFor polls fn until it returns a truthy value, or throws its last
// error (or a timeout) after ms; an error with .fatal set ends it at once.
export async function checkFor(what, fn, ms = 10000) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = null;
    } catch (e) {
      if (e.fatal) throw e;
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? ': ' + last.message : ''}`);
    await sleep(50);
  }
}

export function assertEqual(got, want, what) {
  const g = JSON.stringify(got),
    w = JSON.stringify(want);
  if (g !== w) throw new Error(`${what}:\n  got  ${g}\n  want ${w}`);
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
}

// running holds every live halley process and dirs every data directory,
// so none outlives the runner even when it dies on an error.
const running = new Set();
const dirs = new Set();
process.on('exit', () => {
  for (const p of running) p.kill('SIGKILL');
  for (const d of dirs) {
    try {
      rmSync(d, { recursive: true, force: true, maxRetries: 3 });
    } catch {
      // a killed server may still be writing: leave the rest to tmp cleaning
    }
  }
});

// Halley is one server process with its own data directory and port; it
// can be killed (-9) or stopped (SIGTERM, drain) and started again on the
// same port and data.
export class Halley {
  constructor(args = []) {
    this.args = args;
    this.dir = mkdtempSync(join(tmpdir(), 'halley-browser-'));
    dirs.add(this.dir);
    this.proc = null;
    this.log = '';
  }

  async start() {
    if (!this.port) this.port = await freePort();
    this.base = `http://127.0.0.1:${this.port}`;
    const proc = spawn(halleyBin, ['serve', '--data', join(this.dir, 'db'), '--listen', `127.0.0.1:${this.port}`, ...this.args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.proc = proc;
    running.add(proc);
    proc.exited = new Promise((r) => proc.once('exit', r));
    proc.once('exit', () => running.delete(proc));
    proc.stdout.on('data', (d) => (this.log += d));
    proc.stderr.on('data', (d) => (this.log += d));
    await checkFor(`halley on ${this.base}`, async () => {
      if (proc.exitCode != null) throw new Error(`halley exited ${proc.exitCode}: ${this.log.slice(-500)}`);
      const r = await fetch(this.base + '/healthz');
      return r.ok;
    });
    if (!this.key) this.readCredentials(await this.startupLines());
    return this;
  }

  // startupLines waits for the demo page line (printed after the
  // "created account" line, on every start while the demo account exists)
  // and returns the log so far.
  async startupLines() {
    await checkFor('the demo page line on stdout', () => /\ndemo page: .*\n/.test('\n' + this.log), 3000).catch(() => {});
    return this.log;
  }

  // readCredentials takes the demo account's credentials from serve's
  // start-up lines:
  //   created account demo: api_key=<private> cf_api_key=<public> api_secret=<secret>
  //   demo page: http://ADDR/  (account demo, cf_api_key <public>)
  // key is the private EZComet write key, cfKey the public Cometify key.
  // A line of another shape fails loudly: the tests must never fall back
  // to the private key on a Cometify path.
  readCredentials(log) {
    const created = log.match(/^created account (\w+): api_key=([0-9a-f]{32}) cf_api_key=([0-9a-f]{32}) api_secret=([A-Za-z0-9_-]{24,})$/m);
    if (!created) throw new Error('halley printed no "created account NAME: api_key=… cf_api_key=… api_secret=…" line: ' + log.slice(-500));
    const page = log.match(/^demo page: (http:\/\/\S+\/) {2}\(account (\w+), cf_api_key ([0-9a-f]{32})\)$/m);
    if (!page) throw new Error('halley printed no "demo page: http://ADDR/  (account NAME, cf_api_key …)" line: ' + log.slice(-500));
    [, this.user, this.key, this.cfKey, this.secret] = created;
    this.demoURL = page[1];
    if (page[2] !== this.user || page[3] !== this.cfKey) throw new Error(`the demo page line names ${page[2]} ${page[3]}, the created line ${this.user} ${this.cfKey}`);
    if (this.key === this.cfKey) throw new Error('api_key and cf_api_key are the same: ' + this.key);
  }

  async stop(signal = 'SIGKILL') {
    if (!this.proc || this.proc.exitCode != null) return;
    this.proc.kill(signal);
    await this.proc.exited;
  }

  async cleanup() {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
    dirs.delete(this.dir);
  }

  async post(path, form) {
    const r = await fetch(this.base + path, { method: 'POST', body: new URLSearchParams(form) });
    return r.json();
  }

  // write stores an EZComet message with the private api_key, retrying with the same tick while the
  // server is down (a retried tick is idempotent, EZ-W-07).
  async write(channel, msg, tick, { retry = false } = {}) {
    for (;;) {
      try {
        const form = { api_key: this.key, qname: `${this.user}-${channel}`, msg };
        if (tick != null) form.tick = tick;
        const v = await this.post('/write', form);
        if (v.code === 'ok') return v;
        if (!retry || v.status !== 503) throw new Error('write: ' + JSON.stringify(v));
      } catch (e) {
        if (!retry) throw e;
      }
      await sleep(50);
    }
  }

  // push makes a Cometify push with the public cf_api_key (CF-P-07),
  // signed with the secret; with retry it repeats the same push_id while
  // the server is down (idempotent, CF-P-06).
  async push(identifier, text, { secret = 0, pushId, retry = false } = {}) {
    for (;;) {
      try {
        const form = { identifier, secret: String(secret), text, secure: md5(this.cfKey + md5(this.secret) + identifier + text) };
        if (pushId != null) form.push_id = String(pushId);
        const v = await this.post(`/${this.cfKey}/push/${identifier}`, form);
        if (v.code === 'ok') return v;
        if (!retry || v.status !== 503) throw new Error('push: ' + JSON.stringify(v));
      } catch (e) {
        if (!retry) throw e;
      }
      await sleep(50);
    }
  }

  // secureKey is CF-L-06's key for a list: md5(cf_api_key + secret + md5(list)).
  secureKey(names) {
    return md5(this.cfKey + this.secret + md5(names.join(',')));
  }
}

// Edge is a proxy in front of one halley: the origin the page's <script>
// (halley's own /ezcomet.min.js, /latest/cometify.min.js) and API calls go
// to. Modes (settable at any time): blockWS refuses upgrades, blockSSE
// answers SSE paths 403, noCORS strips the CORS headers (so a cross-origin
// page can use neither fetch nor EventSource). freeze() stops forwarding
// on every open connection without closing it.
export class Edge {
  constructor(halley, mode = {}) {
    this.h = halley;
    this.mode = { blockWS: false, blockSSE: false, noCORS: false, ...mode };
    this.conns = new Set();
    this.requests = [];
  }

  async start() {
    this.server = http.createServer((req, res) => this.onRequest(req, res));
    this.server.on('upgrade', (req, socket, head) => this.onUpgrade(req, socket, head));
    this.server.on('connection', (s) => {
      this.conns.add(s);
      s.on('close', () => this.conns.delete(s));
    });
    await new Promise((r) => this.server.listen(0, '127.0.0.1', r));
    this.base = `http://127.0.0.1:${this.server.address().port}`;
    return this;
  }

  onRequest(req, res) {
    this.requests.push(req.method + ' ' + req.url);
    const path = req.url.split('?')[0];
    if (this.mode.blockSSE && /\/(read\/)?sse$/.test(path)) {
      res.writeHead(403, { 'Content-Type': 'text/plain' });
      res.end('blocked by the test proxy');
      return;
    }
    const up = http.request(
      { host: '127.0.0.1', port: this.h.port, method: req.method, path: req.url, headers: req.headers, agent: false },
      (ur) => {
        const headers = { ...ur.headers };
        if (this.mode.noCORS) for (const k of Object.keys(headers)) if (k.startsWith('access-control-')) delete headers[k];
        res.writeHead(ur.statusCode, headers);
        ur.pipe(res);
        this.track(req.socket, ur.socket);
      }
    );
    // The server is down: look like it, a connection reset, not a 502.
    up.on('error', () => req.socket.destroy());
    // The client went away (an aborted long-poll, a closed EventSource):
    // so does the upstream request, as a real proxy's would, or it would
    // hold its listener slot on the server until it times out.
    res.on('close', () => {
      if (!res.writableFinished) up.destroy();
    });
    req.pipe(up);
  }

  onUpgrade(req, socket, head) {
    this.requests.push('UPGRADE ' + req.url);
    if (this.mode.blockWS) {
      socket.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    const up = net.connect(this.h.port, '127.0.0.1', () => {
      let raw = `${req.method} ${req.url} HTTP/1.1\r\n`;
      for (let i = 0; i < req.rawHeaders.length; i += 2) raw += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
      up.write(raw + '\r\n');
      if (head.length) up.write(head);
      up.pipe(socket);
      socket.pipe(up);
    });
    up.on('error', () => socket.destroy());
    socket.on('error', () => up.destroy());
    up.on('close', () => socket.destroy());
    socket.on('close', () => up.destroy());
    this.track(socket, up);
  }

  track(a, b) {
    a.peer = b;
  }

  // freeze makes every open connection silent both ways, as a dead
  // network path would: nothing is closed, nothing gets through.
  freeze() {
    for (const s of this.conns) {
      s.unpipe();
      s.pause();
      if (s.peer) {
        s.peer.unpipe();
        s.peer.pause();
      }
      s.frozen = true;
    }
  }

  async cleanup() {
    for (const s of this.conns) s.destroy();
    await new Promise((r) => this.server.close(r));
  }
}

// Site serves the test pages from an origin of its own.
export class Site {
  constructor() {
    this.pages = new Map();
    this.seq = 0;
  }
  async start() {
    this.server = http.createServer((req, res) => {
      const body = this.pages.get(req.url.split('?')[0]);
      if (body == null) {
        res.writeHead(404);
        res.end();
        return;
      }
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
      res.end(body);
    });
    await new Promise((r) => this.server.listen(0, '127.0.0.1', r));
    this.base = `http://127.0.0.1:${this.server.address().port}`;
    return this;
  }
  add(html) {
    const path = `/p${++this.seq}.html`;
    this.pages.set(path, html);
    return this.base + path;
  }
  async cleanup() {
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }
}

// A real nginx in front of a halley, running deploy/nginx.conf: the file
// an operator installs, with only its ports, certificate paths and
// upstream address rewritten for the test (each rewrite must match, so a
// changed deploy/nginx.conf fails here loudly rather than being tested
// half). nginx runs in the foreground with its own prefix, pid, logs and
// temp paths in a throw-away directory; the TLS certificate is a
// throw-away self-signed one made with openssl once per run.
import { execFileSync, spawn } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkFor, freePort, root } from './harness.mjs';

export const nginxBin = process.env.NGINX || '/usr/sbin/nginx';
export const haveNginx = existsSync(nginxBin);

// tls is the run's certificate: for 127.0.0.1 and localhost, made at
// start (the browser is launched trusting exactly its key, see run.mjs).
export const tls = haveNginx ? makeCert() : null;

function makeCert() {
  const dir = mkdtempSync(join(tmpdir(), 'halley-tls-'));
  const key = join(dir, 'key.pem'),
    cert = join(dir, 'cert.pem');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=halley browser test',
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  const pem = readFileSync(cert);
  // Chromium's --ignore-certificate-errors-spki-list takes base64
  // sha256 of the certificate's SubjectPublicKeyInfo.
  const spki = new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' });
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  return { dir, key, cert, pem, spki: createHash('sha256').update(spki).digest('base64') };
}

// render rewrites deploy/nginx.conf for a test: listeners on 127.0.0.1
// test ports, the test certificate, halley's port as the upstream.
export function render(conf, { httpPort, httpsPort, halleyPort }) {
  const edits = [
    [/^ {4}listen 80;$/m, `    listen 127.0.0.1:${httpPort};`],
    [/^ {4}listen \[::\]:80;\n/m, ''],
    [/^ {4}listen 443 ssl http2;$/m, `    listen 127.0.0.1:${httpsPort} ssl http2;`],
    [/^ {4}listen \[::\]:443 ssl http2;\n/m, ''],
    [/^( {4}ssl_certificate) +\S+;$/m, `$1 ${tls.cert};`],
    [/^( {4}ssl_certificate_key) +\S+;$/m, `$1 ${tls.key};`],
    [/^( {4}server) 127\.0\.0\.1:8080;$/m, `$1 127.0.0.1:${halleyPort};`],
  ];
  for (const [re, to] of edits) {
    if (!re.test(conf)) throw new Error(`deploy/nginx.conf: no line matches ${re}: the test's rewrite needs updating`);
    conf = conf.replace(re, to);
  }
  return conf;
}

// live holds every running nginx, stopped if the runner exits early. A
// killed master would leave its worker serving, so it gets SIGTERM (a
// fast shutdown that takes the worker with it).
const live = new Set();
process.on('exit', () => {
  for (const p of live) p.kill('SIGTERM');
});

export class Nginx {
  constructor(halley) {
    this.h = halley;
    this.dir = mkdtempSync(join(tmpdir(), 'halley-nginx-'));
    this.log = '';
  }

  async start() {
    const [httpPort, httpsPort] = [await freePort(), await freePort()];
    const site = render(readFileSync(join(root, 'deploy', 'nginx.conf'), 'utf8'), { httpPort, httpsPort, halleyPort: this.h.port });
    writeFileSync(join(this.dir, 'halley.conf'), site);
    // The main file is what Debian's /etc/nginx/nginx.conf amounts to:
    // the site file included inside http{}. Every path is in this.dir.
    const d = this.dir;
    writeFileSync(
      join(d, 'nginx.conf'),
      `daemon off;
master_process on;
worker_processes 1;
pid ${d}/nginx.pid;
error_log ${d}/error.log info;
${process.getuid && process.getuid() === 0 ? 'user nobody nogroup;' : ''}
events { worker_connections 1024; }
http {
    access_log ${d}/access.log;
    client_body_temp_path ${d}/client_body;
    proxy_temp_path ${d}/proxy;
    fastcgi_temp_path ${d}/fastcgi;
    uwsgi_temp_path ${d}/uwsgi;
    scgi_temp_path ${d}/scgi;
    include ${d}/halley.conf;
}
`
    );
    this.base = `https://127.0.0.1:${httpsPort}`;
    this.wsBase = `wss://127.0.0.1:${httpsPort}`;
    this.httpBase = `http://127.0.0.1:${httpPort}`;
    this.port = httpsPort;
    const proc = spawn(nginxBin, ['-p', d, '-c', join(d, 'nginx.conf'), '-e', join(d, 'error.log')], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    live.add(proc);
    proc.exited = new Promise((r) => proc.once('exit', r));
    proc.once('exit', () => live.delete(proc));
    proc.stdout.on('data', (x) => (this.log += x));
    proc.stderr.on('data', (x) => (this.log += x));
    await checkFor(`nginx on ${this.base}`, async () => {
      if (proc.exitCode != null) throw Object.assign(new Error(`nginx exited ${proc.exitCode}: ${this.log}${this.errorLog()}`), { fatal: true });
      return (await this.request('GET', '/healthz')).status === 200;
    });
    return this;
  }

  errorLog() {
    try {
      return readFileSync(join(this.dir, 'error.log'), 'utf8').slice(-1500);
    } catch {
      return '';
    }
  }

  // request makes one HTTPS request through nginx, checking its
  // certificate against the test's, from localAddress when given (any
  // 127.x.y.z: nginx sees it as $remote_addr). It resolves to
  // {status, headers, body}, or for an accepted WebSocket upgrade
  // {status: 101, socket} (the caller closes the socket).
  request(method, path, { body, headers = {}, localAddress, timeoutMs = 15000 } = {}) {
    return new Promise((resolve, reject) => {
      const req = https.request(
        { host: '127.0.0.1', port: this.port, method, path, headers, localAddress, ca: tls.pem, servername: 'localhost', agent: false },
        (res) => {
          let b = '';
          res.setEncoding('utf8');
          res.on('data', (x) => (b += x));
          res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: b }));
          res.on('error', reject);
        }
      );
      req.on('upgrade', (res, socket) => resolve({ status: res.statusCode, headers: res.headers, socket }));
      req.on('error', reject);
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${path}: no answer in ${timeoutMs} ms`)));
      req.end(body);
    });
  }

  // upgrade opens a WebSocket handshake to path through nginx.
  upgrade(path, { localAddress, headers = {} } = {}) {
    return this.request('GET', path, {
      localAddress,
      headers: {
        Connection: 'Upgrade',
        Upgrade: 'websocket',
        'Sec-WebSocket-Version': '13',
        'Sec-WebSocket-Key': Buffer.from(Array.from({ length: 16 }, () => Math.floor(Math.random() * 256))).toString('base64'),
        ...headers,
      },
    });
  }

  // via is h seen through this proxy: its write and push go to nginx.
  via() {
    const v = Object.create(this.h);
    v.post = async (path, form) => {
      const r = await this.request('POST', path, {
        body: new URLSearchParams(form).toString(),
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      });
      return JSON.parse(r.body);
    };
    return v;
  }

  async cleanup() {
    if (this.proc && this.proc.exitCode == null) {
      this.proc.kill('SIGQUIT'); // graceful: closes the open streams
      const t = setTimeout(() => this.proc.kill('SIGKILL'), 3000);
      await this.proc.exited;
      clearTimeout(t);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

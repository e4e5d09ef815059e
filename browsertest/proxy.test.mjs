// Both JS clients through a real nginx running deploy/nginx.conf (TLS,
// WebSocket upgrade, SSE and long-poll unbuffered), in front of a halley
// that trusts it (--trusted-proxy 127.0.0.1), and the per-IP caps counted
// per forwarded client address (C-07, C-12, CF-L-08). The pages load the
// clients from https://, so they talk https:// and wss://; messages are
// published through nginx too.
import { assertEqual, checkFor } from './harness.mjs';
import { cfPage, ezPage, gotFor, results } from './pages.mjs';

export const tests = [];
const test = (name, fn) => tests.push({ name: 'nginx: ' + name, fn });

async function setup(t, args = []) {
  const h = await t.halley(['--trusted-proxy', '127.0.0.1', ...args]);
  const n = await t.nginx(h);
  return { h, n, pub: n.via() };
}

const lastTransport = (p, name) =>
  checkFor(`${name} connected`, async () => {
    const r = (await results(p))[name];
    return r.transports.at(-1);
  });

for (const transport of ['websocket', 'sse', 'poll']) {
  test(`ezcomet over https/wss through nginx, ${transport}: queued then live messages`, async (t) => {
    const { n, pub, h } = await setup(t);
    await pub.write('px', 'queued');
    const p = await t.page(ezPage(n.base + '/ezcomet.min.js', h.user, [{ name: 'e', opts: { channel: 'px', auto_tick: false, transports: [transport] } }]));
    assertEqual(await gotFor(p, 'e', 1), ['queued'], 'queued message');
    assertEqual(await lastTransport(p, 'e'), transport, 'transport');
    await pub.write('px', 'live 1');
    await pub.write('px', 'live 2');
    assertEqual(await gotFor(p, 'e', 3), ['queued', 'live 1', 'live 2'], 'messages');
    assertEqual((await results(p)).e.errors, [], 'errors');
  });

  test(`cometify over https/wss through nginx, ${transport}: pushes arrive as made`, async (t) => {
    const { n, pub, h } = await setup(t);
    const p = await t.page(cfPage(n.base + '/latest/cometify.min.js', [{ name: 'c', opts: { apiKey: h.cfKey, identifiers: ['news'], transports: [transport] } }]));
    assertEqual(await lastTransport(p, 'c'), transport, 'transport');
    await pub.push('news', 'first');
    await pub.push('news', 'second');
    assertEqual(await gotFor(p, 'c', 2), [['first', 1, 'news'], ['second', 2, 'news']], 'pushes');
    assertEqual((await results(p)).c.errors, [], 'errors');
  });
}

test('the WebSocket the page opens is wss:// to nginx, and nginx answers plain http:// with a redirect to https://', async (t) => {
  const { n, h } = await setup(t);
  const p = await t.page(ezPage(n.base + '/ezcomet.min.js', h.user, [{ name: 'e', opts: { channel: 'ws', auto_tick: false, transports: ['websocket'] } }]));
  const ws = await checkFor('the page to open a WebSocket', () => p.webSockets[0]);
  if (!ws.url().startsWith(n.wsBase + '/')) throw new Error(`the page's WebSocket is ${ws.url()}, not on ${n.wsBase}`);
  const r = await fetch(n.httpBase + '/healthz', { redirect: 'manual' });
  // $host carries no port: in the test the redirect names 443, where
  // nothing listens, so only the answer itself is checked.
  assertEqual([r.status, r.headers.get('location')], [301, 'https://127.0.0.1/healthz'], 'plain http');
});

// fill opens up to max WebSocket listeners through nginx from one source
// address, stopping at the first refusal; it returns how many opened and
// the refusal. The caller closes the sockets (closeAll) in a finally.
async function fill(n, path, localAddress, max, sockets, headers) {
  for (let i = 0; i < max; i++) {
    const r = await n.upgrade(path, { localAddress, headers });
    if (r.status !== 101) return { opened: i, refused: r };
    sockets.push(r.socket);
  }
  return { opened: max, refused: null };
}
const closeAll = (sockets) => sockets.forEach((s) => s.destroy());

test("per-IP caps through nginx: CF-L-08's 30 listeners count the forwarded client address, not nginx's", async (t) => {
  const { n, h } = await setup(t);
  const path = `/${h.cfKey}/listen?identifiers=capped`;
  const sockets = [];
  try {
    // Client A (127.0.0.2 as nginx sees it): 30 listeners, the 31st is a 429.
    const a = await fill(n, path, '127.0.0.2', 31, sockets);
    assertEqual(a.opened, 30, 'listeners from 127.0.0.2 before the cap');
    if (!a.refused) throw new Error('the 31st listener from 127.0.0.2 was accepted');
    assertEqual([a.refused.status, JSON.parse(a.refused.body).code], [429, 'error'], 'the 31st from 127.0.0.2');
    // A forged X-Forwarded-For does not make A someone else: nginx replaces it.
    const forged = await n.upgrade(path, { localAddress: '127.0.0.2', headers: { 'X-Forwarded-For': '10.1.2.3', Forwarded: 'for=10.1.2.4' } });
    if (forged.socket) sockets.push(forged.socket);
    assertEqual(forged.status, 429, 'a 32nd from 127.0.0.2 naming 10.1.2.3 in X-Forwarded-For');
    // Client B (127.0.0.3) through the same nginx is not held by A's cap.
    const b = await n.upgrade(path, { localAddress: '127.0.0.3' });
    if (b.socket) sockets.push(b.socket);
    assertEqual(b.status, 101, 'a listener from 127.0.0.3');
  } finally {
    closeAll(sockets);
  }
});

test('per-IP caps through nginx: a client on the proxy\'s own (trusted) address cannot escape the cap with X-Forwarded-For', async (t) => {
  // 127.0.0.1 is both nginx's address and, here, a client's: were nginx
  // to append to the client's X-Forwarded-For, halley would skip the
  // trusted 127.0.0.1 and count the client as whatever it wrote.
  const { n, h } = await setup(t);
  const path = `/${h.cfKey}/listen?identifiers=capped`;
  const sockets = [];
  try {
    const a = await fill(n, path, '127.0.0.1', 31, sockets);
    assertEqual(a.opened, 30, 'listeners from 127.0.0.1 before the cap');
    for (const xff of ['10.9.9.9', '10.9.9.9, 10.8.8.8']) {
      const r = await n.upgrade(path, { localAddress: '127.0.0.1', headers: { 'X-Forwarded-For': xff } });
      if (r.socket) sockets.push(r.socket);
      assertEqual(r.status, 429, `one more from 127.0.0.1 with X-Forwarded-For: ${xff}`);
    }
  } finally {
    closeAll(sockets);
  }
});

test('--max-conns-per-ip through nginx: counted per forwarded client address (one over gets 429, another address does not)', async (t) => {
  const { n, h } = await setup(t, ['--max-conns-per-ip', '3']);
  const path = `/${h.cfKey}/listen?identifiers=conns`;
  const sockets = [];
  try {
    const a = await fill(n, path, '127.0.0.4', 4, sockets);
    assertEqual(a.opened, 3, 'connections from 127.0.0.4 before the cap');
    if (!a.refused) throw new Error('the 4th connection from 127.0.0.4 was accepted');
    assertEqual(a.refused.status, 429, 'the 4th from 127.0.0.4');
    const b = await fill(n, path, '127.0.0.5', 3, sockets);
    assertEqual(b.opened, 3, 'connections from 127.0.0.5');
    // Plain requests from a capped address: refused too; others pass.
    assertEqual((await n.request('GET', '/healthz', { localAddress: '127.0.0.5' })).status, 429, '/healthz from 127.0.0.5 at its cap');
    assertEqual((await n.request('GET', '/healthz', { localAddress: '127.0.0.6' })).status, 200, '/healthz from 127.0.0.6');
  } finally {
    closeAll(sockets);
  }
});

test('halley down behind nginx: a JSON 503 with CORS (as halley\'s own errors), then served again once it is back', async (t) => {
  const { n, h } = await setup(t);
  await h.stop('SIGTERM');
  const r = await n.request('GET', '/healthz');
  assertEqual([r.status, r.headers['content-type'], r.headers['access-control-allow-origin']], [503, 'application/json; charset=utf-8', '*'], 'status and headers');
  assertEqual(JSON.parse(r.body), { code: 'error', msg: 'halley is unavailable', status: 503 }, 'body');
  await h.start();
  await checkFor('nginx serving again', async () => (await n.request('GET', '/healthz')).status === 200);
});

// The longest wait a client can ask for outlasts nginx's default read
// timeout (60 s, then a 504): deploy/nginx.conf's proxy_read_timeout must
// let it run. This test waits 70 s, in parallel with the others.
test('a long-poll of 70 s through nginx ends with halley\'s empty answer, not a proxy timeout', async (t) => {
  const { n, h } = await setup(t);
  const r = await n.request('GET', `/read?qname=${h.user}-quiet&timeout=70`, { timeoutMs: 90000 });
  assertEqual([r.status, JSON.parse(r.body)], [200, { code: 'ok', messages: [] }], 'the answer after 70 s');
});

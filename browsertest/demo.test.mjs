// The demo page: both clients on one page, writing and pushing as
// the demo account through the server's demo-only endpoints, the transport
// in use visible; the page and everything it loads carry neither the
// api_secret nor the private api_key; the endpoints answer loopback
// clients only. With DEMO_SCREENSHOT=path the second test saves the
// screenshot for docs/.
import { assertEqual, checkFor, md5 } from './harness.mjs';
import { cfPage, results } from './pages.mjs';

export const tests = [];
const test = (name, fn) => tests.push({ name: 'demo page: ' + name, fn });

// openDemo opens the demo page at the URL halley printed at start.
async function openDemo(t, args) {
  const h = await t.halley(args);
  const p = await t.context.newPage();
  await p.goto(h.demoURL);
  return { h, p };
}

// keyless listens on identifier with the public key and no secureKey,
// from a page of another origin.
async function keyless(t, h, identifier) {
  return t.page(cfPage(h.base + '/latest/cometify.min.js', [{ name: 'l', opts: { apiKey: h.cfKey, identifiers: [identifier] } }]));
}

// send sends one message from the page and waits for its status line.
async function send(p, text, { secret = false } = {}) {
  await p.setChecked('#secret', secret);
  await p.fill('#msg', text);
  await p.evaluate(() => (document.querySelector('#status small').textContent = ''));
  await p.click('#send');
  return checkFor(`the status of "${text}"`, async () => {
    const s = await p.textContent('#status');
    if (/write: |push: |error: /.test(s)) throw Object.assign(new Error('the page reports: ' + s), { fatal: true });
    return /written, tick .*; pushed, id \d+/.test(s) && s;
  });
}

test('a message written in the page arrives through ezcomet.js over WebSocket', async (t) => {
  const { h, p } = await openDemo(t);
  await checkFor('ezcomet badge', async () => (await p.textContent('#ez-transport')) === 'websocket');
  await p.fill('#msg', 'hello from the demo test');
  await p.click('#send');
  await checkFor('the message in the ezcomet pane', async () => (await p.textContent('#ez-log')).includes('hello from the demo test'));
  await checkFor('status', async () => /written, tick [0-9a-f-]{36}/.test(await p.textContent('#status')));
  // Someone else's write to the channel shows up too.
  await h.write('chat', 'from the server side');
  await checkFor('a server write in the pane', async () => (await p.textContent('#ez-log')).includes('from the server side'));
});

test('a message sent in the page arrives through both clients; a secret push only where the secureKey is', async (t) => {
  const { h, p } = await openDemo(t);
  await checkFor('both badges', async () =>
    (await p.textContent('#ez-transport')) === 'websocket' && (await p.textContent('#cf-transport')) === 'websocket'
  );
  const other = await keyless(t, h, 'chat');
  await checkFor('the keyless listener up', async () => (await results(other)).l.transports.includes('websocket'));
  assertEqual(await send(p, 'hello, both clients').then((s) => / pushed, id 1$/.test(s)), true, 'first push id');
  await checkFor('ezcomet pane', async () => (await p.textContent('#ez-log')).includes('hello, both clients'));
  await checkFor('cometify pane', async () => (await p.textContent('#cf-log')).includes('hello, both clients'));
  await send(p, 'a secret push', { secret: true });
  await checkFor('the secret push in the cometify pane', async () => (await p.textContent('#cf-log')).includes('a secret push'));
  await send(p, 'public again');
  await checkFor('the last push in the cometify pane', async () => (await p.textContent('#cf-log')).includes('public again'));
  // The keyless listener gets pushes 1 and 3, in order, never 2.
  const got = await checkFor('the keyless listener has the last push', async () => {
    const g = (await results(other)).l.got;
    return g.some((x) => x[0] === 'public again') && g;
  });
  assertEqual(got, [['hello, both clients', 1, 'chat'], ['public again', 3, 'chat']], 'what a listener without the secureKey got');
  await p.fill('#msg', 'Hello from Halley!');
  if (process.env.DEMO_SCREENSHOT) {
    await p.setViewportSize({ width: 1100, height: 900 });
    await p.screenshot({ path: process.env.DEMO_SCREENSHOT });
  }
});

test('the page and everything it loads and sends carry neither the api_secret nor the private api_key', async (t) => {
  const h = await t.halley();
  const p = await t.context.newPage();
  // Every response body, request (URL, body) and WebSocket frame of the page.
  const seen = [];
  const pending = [];
  p.on('request', (r) => seen.push({ what: `${r.method()} ${r.url()}`, text: r.url() + '\n' + (r.postData() || '') }));
  p.on('requestfinished', (r) =>
    pending.push(
      r
        .response()
        .then((res) => res && res.body())
        .then((b) => b && seen.push({ what: 'response to ' + r.url(), text: b.toString('latin1') }))
        .catch(() => {})
    )
  );
  p.on('websocket', (ws) => {
    ws.on('framereceived', (f) => seen.push({ what: 'frame from ' + ws.url(), text: String(f.payload) }));
    ws.on('framesent', (f) => seen.push({ what: 'frame to ' + ws.url(), text: String(f.payload) }));
  });
  await p.goto(h.demoURL);
  await checkFor('the cometify badge', async () => (await p.textContent('#cf-transport')) === 'websocket');
  await send(p, 'public');
  await send(p, 'secret', { secret: true });
  await checkFor('both pushes in the cometify pane', async () => /secret[\s\S]*public/.test(await p.textContent('#cf-log')));
  // Another channel: a new listener, a new secureKey.
  await p.fill('#chan', 'other');
  await p.dispatchEvent('#chan', 'change');
  await checkFor('the cometify badge on the new channel', async () => (await p.textContent('#cf-transport')) === 'websocket');
  await send(p, 'on the other channel', { secret: true });
  await checkFor('the push on the other channel', async () => (await p.textContent('#cf-log')).includes('on the other channel'));
  await Promise.all(pending);

  const html = seen.find((s) => s.what === 'response to ' + h.demoURL);
  if (!html || !html.text.includes(h.cfKey)) throw new Error('the page HTML was not seen, or lacks the public cf_api_key');
  for (const path of ['/demo/write', '/demo/push', '/demo/securekey']) {
    if (!seen.some((s) => s.what.startsWith('response to ') && s.what.includes(path))) throw new Error(`no response from ${path} was seen`);
  }
  if (!seen.some((s) => s.what.startsWith('frame from '))) throw new Error('no WebSocket frame was seen');
  // md5(api_secret) signs pushes (CF-P-03): a page with it could push.
  const secrets = { api_secret: h.secret, api_key: h.key, 'md5(api_secret)': md5(h.secret) };
  for (const s of seen) {
    for (const [name, value] of Object.entries(secrets)) {
      if (s.text.includes(value)) throw new Error(`${s.what} carries the ${name}`);
    }
  }
});

test('the demo endpoints refuse what another site makes this browser send', async (t) => {
  const h = await t.halley();
  // A page of another origin posts to the demo endpoints, as a form would:
  // a simple request, sent without a preflight, its answer unreadable.
  const page = await t.page(`<script>
window.done = Promise.all([
  fetch(${JSON.stringify(h.base + '/demo/write')}, { method: 'POST', mode: 'no-cors', body: new URLSearchParams({ channel: 'csrf', msg: 'forged' }) }),
  fetch(${JSON.stringify(h.base + '/demo/push')}, { method: 'POST', mode: 'no-cors', body: new URLSearchParams({ identifier: 'csrf', text: 'forged', secret: '1' }) }),
]).then(() => 'sent', (e) => 'failed: ' + e);
</script>`);
  assertEqual(await page.evaluate(() => window.done), 'sent', 'the forged requests');
  const read = await (await fetch(`${h.base}/read?qname=${h.user}-csrf&timeout=0`)).json();
  assertEqual(read.messages, [], 'demo-csrf after a forged write');
  const poll = await (await fetch(`${h.base}/${h.cfKey}/poll?identifiers=csrf:0&timeout=0`)).json();
  assertEqual(poll.pushes, [], 'csrf pushes after a forged push');
  // The same from this test runner, which a browser would label.
  const r = await fetch(h.base + '/demo/write', {
    method: 'POST',
    headers: { Origin: 'http://evil.example' },
    body: new URLSearchParams({ channel: 'csrf', msg: 'forged' }),
  });
  assertEqual([r.status, await r.json()], [403, { code: 'error', msg: 'the demo endpoints answer only their own page\'s origin', status: 403 }], 'a foreign Origin');
});

// A client behind a trusted proxy is judged by its own address (C-07's
// client IP): X-Forwarded-For 203.0.113.7 is refused, ::1 is served. This
// needs the engine to compute Request.ClientIP from X-Forwarded-For.
test('the demo endpoints refuse a client that is not on loopback, behind a trusted proxy', async (t) => {
  const h = await t.halley(['--trusted-proxy', '127.0.0.1/32']);
  const asClient = (ip, method, path, form) =>
    fetch(h.base + path, { method, headers: { 'X-Forwarded-For': ip }, body: form && new URLSearchParams(form) });
  const requests = [
    ['GET', '/'],
    ['POST', '/demo/write', { channel: 'xff', msg: 'from afar' }],
    ['POST', '/demo/push', { identifier: 'xff', text: 'from afar', secret: '0' }],
    ['GET', '/demo/securekey?identifiers=xff'],
  ];
  const refused = {
    code: 'error',
    msg: 'the demo page and its endpoints answer loopback clients only (halley serve --demo opens them to every client)',
    status: 403,
  };
  for (const [method, path, form] of requests) {
    const r = await asClient('203.0.113.7', method, path, form);
    const ct = r.headers.get('content-type');
    assertEqual([r.status, ct, await r.json()], [403, 'application/json; charset=utf-8', refused], `${method} ${path} from 203.0.113.7`);
  }
  const read = await (await fetch(`${h.base}/read?qname=${h.user}-xff&timeout=0`)).json();
  assertEqual(read.messages, [], 'demo-xff after refused writes');
  for (const [method, path, form] of requests) {
    const r = await asClient('::1', method, path, form);
    assertEqual(r.status, 200, `${method} ${path} from ::1 through the trusted proxy`);
  }
});

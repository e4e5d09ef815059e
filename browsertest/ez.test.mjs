// ezcomet.js in a real browser against a real halley (SPEC JS-02, JS-04).
import { assertEqual, checkFor, sleep } from './harness.mjs';
import { ezPage, got, gotFor, fallbacks, results, serve } from './pages.mjs';

export const tests = [];
const test = (name, fn) => tests.push({ name: 'ezcomet: ' + name, fn });

const setup = (t, args, mode) => serve(t, '/ezcomet.min.js', args, mode);

test('msg_type "string" (the default): the queued messages, then live ones, as strings', async (t) => {
  const { h, src } = await setup(t);
  for (const m of ['one', 'two', '{"x":1}']) await h.write('str', m);
  const p = await t.page(ezPage(src, h.user, [{ name: 's', opts: { channel: 'str', auto_tick: false } }]));
  await gotFor(p, 's', 3);
  await h.write('str', 'live');
  assertEqual(await gotFor(p, 's', 4), ['one', 'two', '{"x":1}', 'live'], 'messages');
  assertEqual((await results(p)).s.transports, ['websocket'], 'transport');
});

test('msg_type "json": each message parsed; a message that is not JSON goes to onError', async (t) => {
  const { h, src } = await setup(t);
  await h.write('js', '{"a":[1,2],"b":"é"}');
  await h.write('js', 'not json');
  await h.write('js', '42');
  const p = await t.page(ezPage(src, h.user, [{ name: 'j', opts: { channel: 'js', msg_type: 'json', auto_tick: false } }]));
  assertEqual(await gotFor(p, 'j', 2), [{ a: [1, 2], b: 'é' }, 42], 'parsed messages');
  assertEqual((await results(p)).j.errors.map((e) => e.data), ['not json'], 'errors');
});

test('msg_type "raw": [tick, msg] pairs with the ticks the writer set or the server generated', async (t) => {
  const { h, src } = await setup(t);
  await h.write('raw', 'm1', 't-1');
  const gen = (await h.write('raw', 'm2')).tick;
  const p = await t.page(ezPage(src, h.user, [{ name: 'r', opts: { channel: 'raw', msg_type: 'raw', auto_tick: false } }]));
  assertEqual(await gotFor(p, 'r', 2), [['t-1', 'm1'], [gen, 'm2']], 'raw messages');
});

test('tick: absent → all queued; unknown tick → all; a middle tick → the later ones; the newest → waits', async (t) => {
  const { h, src } = await setup(t);
  for (let i = 1; i <= 5; i++) await h.write('ticks', 'msg' + i, String(i));
  const sub = (name, tick) => ({ name, opts: { channel: 'ticks', tick, auto_tick: false } });
  const p = await t.page(ezPage(src, h.user, [sub('none', null), sub('t999', '999'), sub('t3', '3'), sub('t5', '5')]));
  const all = ['msg1', 'msg2', 'msg3', 'msg4', 'msg5'];
  assertEqual(await gotFor(p, 'none', 5), all, 'tick null');
  assertEqual(await gotFor(p, 't999', 5), all, 'tick 999');
  assertEqual(await gotFor(p, 't3', 2), ['msg4', 'msg5'], 'tick 3');
  await sleep(300);
  assertEqual(await got(p, 't5'), [], 'tick 5 before a new message');
  await h.write('ticks', 'msg6', '6');
  assertEqual(await gotFor(p, 't5', 1), ['msg6'], 'tick 5 after a new message');
  await gotFor(p, 't3', 3);
});

test('auto_tick: the last tick is kept in a cookie per channel; a reload resumes after it', async (t) => {
  const { h, src } = await setup(t);
  for (let i = 1; i <= 3; i++) await h.write('auto', 'a' + i, 'a' + i);
  await h.write('other', 'o1', 'o1');
  const html = ezPage(src, h.user, [
    { name: 'a', opts: { channel: 'auto', auto_tick: true } },
    { name: 'o', opts: { channel: 'other', auto_tick: true } },
  ]);
  const p = await t.page(html);
  await gotFor(p, 'a', 3);
  await gotFor(p, 'o', 1);
  const cookies = await t.context.cookies(p.url());
  const jar = Object.fromEntries(cookies.map((c) => [c.name, decodeURIComponent(c.value)]));
  assertEqual([jar[`ezcomet_tick_${h.user}-auto`], jar[`ezcomet_tick_${h.user}-other`]], ['a3', 'o1'], 'cookies per channel');
  await h.write('auto', 'a4', 'a4');
  await gotFor(p, 'a', 4);
  await p.reload();
  await sleep(500);
  assertEqual(await got(p, 'a'), [], 'after reload, nothing already seen');
  await h.write('auto', 'a5', 'a5');
  assertEqual(await gotFor(p, 'a', 1), ['a5'], 'after reload');
  assertEqual(await got(p, 'o'), [], 'other channel after reload');
  // auto_tick false ignores the cookie: every queued message again.
  const q = await t.page(ezPage(src, h.user, [{ name: 'a', opts: { channel: 'auto', auto_tick: false } }]));
  assertEqual(await gotFor(q, 'a', 5), ['a1', 'a2', 'a3', 'a4', 'a5'], 'auto_tick false');
});

test('unsubscribe: subscription.unsubscribe() and ezcomet.unsubscribe({channel}) stop delivery and close the connection', async (t) => {
  const { h, e, src } = await setup(t);
  const p = await t.page(
    ezPage(src, h.user, [
      { name: 'a', opts: { channel: 'u1', auto_tick: false } },
      { name: 'b', opts: { channel: 'u2', auto_tick: false } },
      { name: 'c', opts: { channel: 'u2', auto_tick: false, transports: ['poll'] } },
    ])
  );
  await checkFor('three connections', async () => Object.values(await results(p)).every((r) => r.transports.length));
  await h.write('u1', 'x');
  await h.write('u2', 'y');
  await gotFor(p, 'a', 1);
  await gotFor(p, 'b', 1);
  await gotFor(p, 'c', 1);
  await p.evaluate(() => {
    window.sub_a.unsubscribe();
    ezcomet.unsubscribe({ channel: 'u2' });
  });
  const n = e.requests.length;
  await h.write('u1', 'x2');
  await h.write('u2', 'y2');
  await sleep(700);
  const r = await results(p);
  assertEqual([r.a.got, r.b.got, r.c.got], [['x'], ['y'], ['y']], 'nothing after unsubscribe');
  assertEqual([r.a.transports.at(-1), r.b.transports.at(-1), r.c.transports.at(-1)], [null, null, null], 'transports ended');
  assertEqual(e.requests.slice(n), [], 'requests after unsubscribe');
});

for (const tr of ['sse', 'poll', 'jsonp']) {
  test(`transport "${tr}" alone: backlog and live messages arrive`, async (t) => {
    const { h, src } = await setup(t);
    await h.write('tr', 'first');
    const p = await t.page(ezPage(src, h.user, [{ name: 's', opts: { channel: 'tr', auto_tick: false, transports: [tr] } }]));
    await gotFor(p, 's', 1);
    await h.write('tr', 'second\nline');
    await h.write('tr', 'third');
    assertEqual(await gotFor(p, 's', 3), ['first', 'second\nline', 'third'], 'messages');
    assertEqual((await results(p)).s.transports, [tr], 'transport');
  });
}

for (const [what, mode, want] of fallbacks) {
  test(`fallback: ${what}`, async (t) => {
    const { h, e, src } = await setup(t, [], mode);
    await h.write('fb', 'm1');
    const p = await t.page(ezPage(src, h.user, [{ name: 's', opts: { channel: 'fb', auto_tick: false } }]));
    await gotFor(p, 's', 1);
    await h.write('fb', 'm2');
    assertEqual(await gotFor(p, 's', 2), ['m1', 'm2'], 'messages');
    assertEqual((await results(p)).s.transports, [want], 'transport');
    if (!e.requests.some((r) => r.startsWith('UPGRADE'))) throw new Error('WebSocket was not tried first');
  });
}

// Each transport's page must end with exactly 1..n, in order, while the
// writer keeps writing across the server's death and restart.
async function resumeAcrossRestart(t, signal, args = []) {
  const { h, src } = await setup(t, args);
  // Halley's SSE sends its headers with the first event: t0 opens it.
  await h.write('rs', 'm0', 't0');
  const sub = (name, transports) => ({ name, opts: { channel: 'rs', auto_tick: false, msg_type: 'raw', transports, retryMax: 2000 } });
  const p = await t.page(ezPage(src, h.user, [sub('ws', ['websocket']), sub('sse', ['sse']), sub('poll', ['poll']), sub('jsonp', ['jsonp'])]));
  await checkFor('all connected', async () => {
    const r = await results(p);
    if (!Object.values(r).every((x) => x.transports.length)) throw new Error(JSON.stringify(r));
    return true;
  });
  const n = 60;
  let stopAt = 20;
  const writer = (async () => {
    for (let i = 1; i <= n; i++) {
      if (i === stopAt) {
        await h.stop(signal);
        await sleep(800);
        await h.start();
      }
      await h.write('rs', 'm' + i, 't' + i, { retry: true });
      await sleep(15);
    }
  })();
  await writer;
  const want = Array.from({ length: n + 1 }, (_, i) => ['t' + i, 'm' + i]);
  for (const name of ['ws', 'sse', 'poll', 'jsonp']) {
    assertEqual(await gotFor(p, name, n + 1, 20000), want, `${name}: every message once, in order`);
  }
  const r = await results(p);
  // After a drain a poll may just wait out retry_ms and find the server
  // back; a WebSocket always drops (1001) and comes back.
  for (const name of signal === 'SIGKILL' ? ['ws', 'poll'] : ['ws']) {
    const tr = r[name].transports;
    if (!tr.includes(null) || tr.at(-1) !== tr[0]) throw new Error(`${name}: no drop and reconnect seen: ${JSON.stringify(tr)}`);
  }
}

test('server killed (-9) and restarted mid-stream: every transport resumes, no loss, no duplicate', (t) => resumeAcrossRestart(t, 'SIGKILL'));

test('server drained (SIGTERM, X-02) and restarted mid-stream: every transport resumes, no loss, no duplicate', (t) =>
  resumeAcrossRestart(t, 'SIGTERM'));

test('dead connection: a frozen WebSocket (no close) is detected after deadAfter and resumed without loss', async (t) => {
  const { h, e, src } = await setup(t);
  const p = await t.page(ezPage(src, h.user, [{ name: 's', opts: { channel: 'dead', auto_tick: false, deadAfter: 1500 } }]));
  await checkFor('connected', async () => (await results(p)).s.transports.length);
  await h.write('dead', 'm1');
  await gotFor(p, 's', 1);
  e.freeze();
  await h.write('dead', 'm2');
  await h.write('dead', 'm3');
  await sleep(300);
  assertEqual(await got(p, 's'), ['m1'], 'nothing through a frozen connection');
  assertEqual(await gotFor(p, 's', 3, 8000), ['m1', 'm2', 'm3'], 'after the watchdog');
  assertEqual((await results(p)).s.transports, ['websocket', null, 'websocket'], 'reconnected');
});

test('quiet is not dead: a WebSocket with nothing to say for 3 × deadAfter stays open (its "ping" gets {"pong":true})', async (t) => {
  const { h, src } = await setup(t);
  const p = await t.page(ezPage(src, h.user, [{ name: 's', opts: { channel: 'quiet', auto_tick: false, deadAfter: 1500 } }]));
  await checkFor('connected', async () => (await results(p)).s.transports.length);
  await sleep(4500);
  await h.write('quiet', 'm1');
  assertEqual(await gotFor(p, 's', 1), ['m1'], 'delivered');
  assertEqual((await results(p)).s.transports, ['websocket'], 'never reconnected');
});

test('gap (X-01): a tick whose successors were dropped by retention reaches onGap, then the backlog', async (t) => {
  const { h, src } = await setup(t, ['--ez-max-queue', '3']);
  for (let i = 1; i <= 6; i++) await h.write('gap', 'm' + i, 'g' + i);
  const sub = (name, transports) => ({ name, opts: { channel: 'gap', tick: 'g1', auto_tick: false, transports } });
  const p = await t.page(ezPage(src, h.user, [sub('ws', ['websocket']), sub('sse', ['sse']), sub('poll', ['poll'])]));
  for (const name of ['ws', 'sse', 'poll']) {
    assertEqual(await gotFor(p, name, 3), ['m4', 'm5', 'm6'], `${name}: backlog`);
    const r = (await results(p))[name];
    assertEqual(r.gaps.map((g) => g.channel), ['gap'], `${name}: onGap`);
  }
});

test('upgrade: on SSE because a proxy blocked WebSocket, back to WebSocket after upgradeAfter once it is let through', async (t) => {
  const { h, e, src } = await setup(t, [], { blockWS: true });
  await h.write('up', 'm1');
  const p = await t.page(ezPage(src, h.user, [{ name: 's', opts: { channel: 'up', auto_tick: false, upgradeAfter: 1500 } }]));
  await gotFor(p, 's', 1);
  e.mode.blockWS = false;
  await checkFor('back on a WebSocket', async () => (await results(p)).s.transports.at(-1) === 'websocket');
  await h.write('up', 'm2');
  assertEqual(await gotFor(p, 's', 2), ['m1', 'm2'], 'messages');
  assertEqual((await results(p)).s.transports, ['sse', null, 'websocket'], 'transports');
});

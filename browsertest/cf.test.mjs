// cometify.js in a real browser against a real halley (SPEC JS-03, JS-04,
// CF-L, X-01, X-02, X-04).
import { assertEqual, checkFor, sleep } from './harness.mjs';
import { cfPage, got, gotFor, fallbacks, refusedFor, results, serve } from './pages.mjs';

export const tests = [];
const test = (name, fn) => tests.push({ name: 'cometify: ' + name, fn });

const setup = (t, args, mode) => serve(t, '/latest/cometify.min.js', args, mode);
const connected = (p, names) =>
  checkFor(`${names} connected`, async () => {
    const r = await results(p);
    if (!names.every((n) => r[n].transports.at(-1))) throw new Error(JSON.stringify(r));
    return true;
  });

test('identifiers as a string, callback as a function: callback(data, id, identifier) with the identifier as given', async (t) => {
  const { h, src } = await setup(t);
  await h.push('chat', 'before the listener');
  const p = await t.page(cfPage(src, [{ name: 'l', opts: { apiKey: h.cfKey, identifiers: 'Chat' } }]));
  await connected(p, ['l']);
  await h.push('chat', 'hello');
  await h.push('CHAT', 'second');
  assertEqual(await gotFor(p, 'l', 2), [['hello', 2, 'Chat'], ['second', 3, 'Chat']], 'pushes (plain form: only those after connecting)');
  assertEqual((await results(p)).l.transports, ['websocket'], 'transport');
});

test('identifiers as an array, callback as a global function name (the seed example)', async (t) => {
  const { h, src } = await setup(t);
  // The seed's numeric apiKey style: passed as given, a number or a string.
  const p = await t.page(cfPage(src, [{ name: 'l', opts: { apiKey: h.cfKey, identifiers: ['metrics', 'tweets'], globalCallback: true } }]));
  await connected(p, ['l']);
  await h.push('metrics', 'm1');
  await h.push('tweets', 't1');
  await h.push('other', 'not listened to');
  await h.push('metrics', 'm2');
  assertEqual(await gotFor(p, 'l', 3), [['m1', 1, 'metrics'], ['t1', 1, 'tweets'], ['m2', 2, 'metrics']], 'pushes');
});

test('identifiers as a {name: internal_id} map: pushes after the id (recent ones replayed); id 0 → the replay window', async (t) => {
  const { h, src } = await setup(t);
  for (let i = 1; i <= 5; i++) await h.push('news', 'n' + i, { pushId: i * 10 });
  await h.push('scores', 's1');
  await h.push('scores', 's2');
  const p = await t.page(cfPage(src, [{ name: 'l', opts: { apiKey: h.cfKey, identifiers: { news: 20, scores: 0 } } }]));
  await connected(p, ['l']);
  await checkFor('replay', async () => (await got(p, 'l')).length === 5);
  await h.push('news', 'n6', { pushId: 60 });
  const g = await gotFor(p, 'l', 6);
  const by = (name) => g.filter((x) => x[2] === name);
  assertEqual(by('news'), [['n3', 30, 'news'], ['n4', 40, 'news'], ['n5', 50, 'news'], ['n6', 60, 'news']], 'news after 20');
  assertEqual(by('scores'), [['s1', 1, 'scores'], ['s2', 2, 'scores']], 'scores from 0');
});

test('secureKey: secret pushes reach only the page with the right key; a wrong key is a 403 on onError', async (t) => {
  const { h, src } = await setup(t);
  const names = ['guestbook', 'comments', 'oneliner'];
  const opts = (secureKey) => ({ apiKey: h.cfKey, identifiers: names, secureKey });
  const right = await t.page(cfPage(src, [{ name: 'l', opts: opts(h.secureKey(names)) }]));
  const none = await t.page(cfPage(src, [{ name: 'l', opts: opts(undefined) }]));
  const wrong = await t.page(cfPage(src, [{ name: 'l', opts: opts(h.secureKey(['guestbook'])) }]));
  await connected(right, ['l']);
  await connected(none, ['l']);
  await h.push('oneliner', 'public one', { secret: 0 });
  await h.push('oneliner', 'Hello world!', { secret: 1 });
  await h.push('comments', 'public two', { secret: 0 });
  assertEqual(
    await gotFor(right, 'l', 3),
    [['public one', 1, 'oneliner'], ['Hello world!', 2, 'oneliner'], ['public two', 1, 'comments']],
    'with the secureKey'
  );
  assertEqual(await gotFor(none, 'l', 2), [['public one', 1, 'oneliner'], ['public two', 1, 'comments']], 'without');
  const w = await refusedFor(wrong, 'l');
  assertEqual([w.got, w.errors.map((e) => e.status)], [[], [403]], 'wrong secureKey');
});

test('stop(): no more pushes, the connection is closed, no more requests', async (t) => {
  const { h, e, src } = await setup(t);
  const p = await t.page(
    cfPage(src, [
      { name: 'ws', opts: { apiKey: h.cfKey, identifiers: ['a'] } },
      { name: 'poll', opts: { apiKey: h.cfKey, identifiers: ['a'], transports: ['poll'] } },
    ])
  );
  await connected(p, ['ws', 'poll']);
  await h.push('a', 'one');
  await gotFor(p, 'ws', 1);
  await gotFor(p, 'poll', 1);
  // The poll listener re-polls from id 1 as soon as it has the push: let
  // that request arrive first, or a loaded machine counts it as sent
  // after stop().
  await checkFor('the poll listener re-polling from id 1', () => e.requests.some((r) => r.includes('a%3A1')));
  await p.evaluate(() => {
    window.lis_ws.stop();
    window.lis_poll.stop();
  });
  const n = e.requests.length;
  await h.push('a', 'two');
  await sleep(700);
  const r = await results(p);
  assertEqual([r.ws.got.length, r.poll.got.length, r.ws.transports.at(-1), r.poll.transports.at(-1)], [1, 1, null, null], 'after stop');
  assertEqual(e.requests.slice(n), [], 'requests after stop');
});

test('WebSocket only: a refusal the browser hides (403, wrong secureKey) still reaches onError, and the listener stops', async (t) => {
  const { h, e, src } = await setup(t);
  const p = await t.page(
    cfPage(src, [{ name: 'l', opts: { apiKey: h.cfKey, identifiers: ['a'], secureKey: '0'.repeat(32), transports: ['websocket'] } }])
  );
  const r = await refusedFor(p, 'l');
  assertEqual(r.errors.map((x) => x.status), [403], 'errors');
  const n = e.requests.length;
  await sleep(1500);
  assertEqual(e.requests.slice(n), [], 'requests after a fatal refusal');
});

for (const tr of ['sse', 'poll', 'jsonp']) {
  test(`transport "${tr}" alone: plain form from its resume point, then live pushes`, async (t) => {
    const { h, src } = await setup(t);
    await h.push('x', 'before');
    const p = await t.page(cfPage(src, [{ name: 'l', opts: { apiKey: h.cfKey, identifiers: ['x', 'y'], transports: [tr] } }]));
    await connected(p, ['l']);
    await h.push('x', 'one');
    await h.push('y', 'two\nlines');
    assertEqual(await gotFor(p, 'l', 2), [['one', 2, 'x'], ['two\nlines', 1, 'y']], 'pushes');
    assertEqual((await results(p)).l.transports, [tr], 'transport');
  });
}

for (const [what, mode, want] of fallbacks) {
  test(`fallback: ${what}`, async (t) => {
    const { h, e, src } = await setup(t, [], mode);
    const p = await t.page(cfPage(src, [{ name: 'l', opts: { apiKey: h.cfKey, identifiers: ['fb'], secureKey: h.secureKey(['fb']) } }]));
    await connected(p, ['l']);
    await h.push('fb', 'p1', { secret: 1 });
    await h.push('fb', 'p2');
    assertEqual(await gotFor(p, 'l', 2), [['p1', 1, 'fb'], ['p2', 2, 'fb']], 'pushes');
    assertEqual((await results(p)).l.transports, [want], 'transport');
    if (!e.requests.some((r) => r.startsWith('UPGRADE'))) throw new Error('WebSocket was not tried first');
  });
}

// Each transport's page must end with exactly pushes 1..n, in order. The
// server goes down twice: before the first push (the listener has only
// its resume point, X-04) and mid-stream.
async function resumeAcrossRestart(t, signal) {
  const { h, src } = await setup(t);
  const lis = (name, transports) => ({ name, opts: { apiKey: h.cfKey, identifiers: ['rs'], transports, retryMax: 2000 } });
  const names = ['ws', 'sse', 'poll', 'jsonp'];
  const p = await t.page(cfPage(src, [lis('ws', ['websocket']), lis('sse', ['sse']), lis('poll', ['poll']), lis('jsonp', ['jsonp'])]));
  await connected(p, names);
  const n = 50;
  for (let i = 1; i <= n; i++) {
    if (i === 1 || i === 25) {
      await h.stop(signal);
      await sleep(600);
      await h.start();
    }
    await h.push('rs', 'p' + i, { pushId: i, retry: true });
    await sleep(15);
  }
  const want = Array.from({ length: n }, (_, i) => ['p' + (i + 1), i + 1, 'rs']);
  for (const name of names) assertEqual(await gotFor(p, name, n, 20000), want, `${name}: every push once, in order`);
}

test('server killed (-9) and restarted, before the first push and mid-stream: no loss, no duplicate', (t) => resumeAcrossRestart(t, 'SIGKILL'));

test('server drained (SIGTERM, X-02) and restarted, before the first push and mid-stream: no loss, no duplicate', (t) =>
  resumeAcrossRestart(t, 'SIGTERM'));

test('30 tabs from one IP, then a 31st: the 429 cap error reaches onError; it connects once a tab closes', async (t) => {
  const { h, src } = await setup(t);
  // A 31st tab that reached a poll in a moment when the cap let it (polls
  // answered at once are free) goes back up the ladder after upgradeAfter.
  const html = cfPage(src, [
    { name: 'l', opts: { apiKey: h.cfKey, identifiers: ['crowd'], retryBase: 300, retryMax: 1000, upgradeAfter: 3000 } },
  ]);
  const tabs = await Promise.all(Array.from({ length: 30 }, () => t.page(html)));
  await Promise.all(tabs.map((tab) => connected(tab, ['l'])));
  const last = await t.page(html);
  const r = await refusedFor(last, 'l', 20000);
  assertEqual(r.errors[0].status, 429, 'the 31st tab: error status');
  if (!/listener|limit|many|cap/i.test(r.errors[0].msg)) throw new Error('cap error message: ' + r.errors[0].msg);
  await tabs[0].close();
  await checkFor(
    'the 31st tab on a WebSocket',
    async () => {
      const r = (await results(last)).l;
      if (r.transports.at(-1) !== 'websocket') throw new Error(JSON.stringify({ transports: r.transports, errors: r.errors.length }));
      return true;
    },
    30000
  );
  await h.push('crowd', 'all of us');
  await gotFor(last, 'l', 1);
  await gotFor(tabs[29], 'l', 1);
});

test('gap (X-01): an internal id older than the resume window reaches onGap(identifier), then the pushes', async (t) => {
  // Pushes 2 and 3 are past the 1 s resume window when the page connects
  // from G:1; 4 and 5 come live.
  const { h, src } = await setup(t, ['--cf-resume-window', '1s']);
  for (let i = 1; i <= 3; i++) await h.push('g', 'old' + i);
  await sleep(1300);
  const lis = (name, transports) => ({ name, opts: { apiKey: h.cfKey, identifiers: { G: 1, other: 0 }, transports } });
  const p = await t.page(cfPage(src, [lis('ws', ['websocket']), lis('sse', ['sse']), lis('poll', ['poll'])]));
  await connected(p, ['ws', 'sse', 'poll']);
  await h.push('g', 'new4');
  await h.push('g', 'new5');
  for (const name of ['ws', 'sse', 'poll']) {
    assertEqual(await gotFor(p, name, 2), [['new4', 4, 'G'], ['new5', 5, 'G']], `${name}: pushes`);
    assertEqual((await results(p))[name].gaps, ['G'], `${name}: onGap`);
  }
});

test('dead connection: a frozen SSE stream is detected after deadAfter and resumed from its ids without loss', async (t) => {
  const { h, e, src } = await setup(t);
  const p = await t.page(cfPage(src, [{ name: 'l', opts: { apiKey: h.cfKey, identifiers: ['d'], transports: ['sse'], deadAfter: 1500 } }]));
  await connected(p, ['l']);
  await h.push('d', 'p1');
  await gotFor(p, 'l', 1);
  e.freeze();
  await h.push('d', 'p2');
  await h.push('d', 'p3');
  await sleep(300);
  assertEqual((await got(p, 'l')).length, 1, 'nothing through a frozen stream');
  assertEqual(await gotFor(p, 'l', 3, 8000), [['p1', 1, 'd'], ['p2', 2, 'd'], ['p3', 3, 'd']], 'after the watchdog');
  assertEqual((await results(p)).l.transports, ['sse', null, 'sse'], 'reconnected');
});

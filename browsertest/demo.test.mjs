// The demo page: both clients on one page, writing and pushing with
// the demo account, the transport in use visible.
import { checkFor, demoPage } from './harness.mjs';

export const tests = [];
const test = (name, fn) => tests.push({ name: 'demo page: ' + name, fn });

// openDemo opens the demo page at the edge's "/", the API's origin: halley's
// own page once it renders it with the secret, else the same page from the
// Go renderer.
export async function openDemo(t) {
  const h = await t.halley();
  const own = await (await fetch(h.base + '/')).text();
  const e = await t.edge(h, own.includes(`"apiSecret":"${h.secret}"`) ? {} : { demoPage: demoPage(h) });
  const p = await t.context.newPage();
  await p.goto(e.base + '/');
  return { h, e, p };
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

// The demo page: both clients on one page, writing and pushing with
// the demo account, the transport in use visible. With DEMO_SCREENSHOT=path
// the second test saves the screenshot for docs/.
import { checkFor } from './harness.mjs';

export const tests = [];
const test = (name, fn) => tests.push({ name: 'demo page: ' + name, fn });

// openDemo opens the demo page halley serves at "/".
async function openDemo(t) {
  const h = await t.halley();
  const p = await t.context.newPage();
  await p.goto(h.base + '/');
  return { h, p };
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

test('a message sent in the page arrives through both clients, each showing its transport', async (t) => {
  const { p } = await openDemo(t);
  await checkFor('both badges', async () =>
    (await p.textContent('#ez-transport')) === 'websocket' && (await p.textContent('#cf-transport')) === 'websocket'
  );
  await p.fill('#msg', 'hello, both clients');
  await p.click('#send');
  await checkFor('status', async () => /written, tick .*; pushed, id 1/.test(await p.textContent('#status')));
  await checkFor('ezcomet pane', async () => (await p.textContent('#ez-log')).includes('hello, both clients'));
  await checkFor('cometify pane', async () => (await p.textContent('#cf-log')).includes('hello, both clients'));
  await p.check('#secret');
  await p.fill('#msg', 'a secret push');
  await p.click('#send');
  await checkFor('the secret push in the cometify pane', async () => (await p.textContent('#cf-log')).includes('a secret push'));
  await p.fill('#msg', 'Hello from Halley!');
  if (process.env.DEMO_SCREENSHOT) {
    await p.setViewportSize({ width: 1100, height: 700 });
    await p.screenshot({ path: process.env.DEMO_SCREENSHOT });
  }
});

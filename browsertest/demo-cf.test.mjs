// The demo page's Cometify half: both clients, a plain and a secret push.
// With DEMO_SCREENSHOT=path it also saves the screenshot for docs/.
import { checkFor } from './harness.mjs';
import { openDemo } from './demo.test.mjs';

export const tests = [];
const test = (name, fn) => tests.push({ name: 'demo page: ' + name, fn });

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

// The seeds' own page code, with only the script's URL (and the account's
// key) changed: the promise that pages written for the hosted services
// work against Halley. The seed's callback alert()s; the test reads the
// dialogs.
import { assertEqual, checkFor } from './harness.mjs';
import { serve } from './pages.mjs';

export const tests = [];
const test = (name, fn) => tests.push({ name: 'seed example: ' + name, fn });

// dialogs collects the page's alert() texts and dismisses them.
function dialogs(p) {
  const seen = [];
  p.on('dialog', (d) => {
    seen.push(d.message());
    d.dismiss().catch(() => {});
  });
  return seen;
}

test("Cometify's JavaScript listener example, secureKey and string callback name as written", async (t) => {
  const { h, src } = await serve(t, '/latest/cometify.min.js');
  const secureKey = h.secureKey(['guestbook', 'comments', 'oneliner']);
  const p = await t.context.newPage();
  const seen = dialogs(p);
  await p.goto(
    t.site.add(`<!-- JavaScript listener example -->
<script src="${src}"></script>
<script>
    // Using the API secret: (on the server only: no page carries it, A-03)

    Cometify.init({
        apiKey: '${h.cfKey}',
        identifiers: ['guestbook', 'comments', 'oneliner'],
        secureKey: '${secureKey}',
        callback: 'cometifyCallback'
    }).start();

    function cometifyCallback(data, id, identifier) {
        alert('Data: ' + data + '; Identifier: ' + identifier);
    }
</script>`)
  );
  // The seed's PHP example pushes 'Hello world!' to oneliner with secret=1.
  await checkFor('the listener up', async () => {
    await h.push('oneliner', 'Hello world!', { secret: 1 });
    return seen.length > 0;
  });
  assertEqual(seen[0], 'Data: Hello world!; Identifier: oneliner', 'alert');
});

test("EZComet's subscribe call with only the documented arguments", async (t) => {
  const { h, src } = await serve(t, '/ezcomet.min.js');
  await h.write('chatroom.public', 'hello baby!');
  const p = await t.context.newPage();
  const seen = dialogs(p);
  await p.goto(
    t.site.add(`<script src="${src}"></script>
<script>
ezcomet.subscribe({
    user_name: '${h.user}',
    channel: 'chatroom.public',
    callback: function (msg) { alert(msg); }
})
</script>`)
  );
  await checkFor('the queued message', async () => seen.length > 0);
  await h.write('chatroom.public', 'second');
  await checkFor('the live message', async () => seen.length > 1);
  assertEqual(seen, ['hello baby!', 'second'], 'alerts');
  // auto_tick is on unless a page turns it off: a reload resumes.
  await p.reload();
  await h.write('chatroom.public', 'third');
  await checkFor('the message after the reload', async () => seen.length > 2);
  await new Promise((r) => setTimeout(r, 300));
  assertEqual(seen, ['hello baby!', 'second', 'third'], 'alerts after a reload');
});

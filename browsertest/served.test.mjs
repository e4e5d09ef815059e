// JS-01: halley itself serves the clients at their paths, with the type,
// an ETag (a revalidation answers 304) and a Cache-Control, and a page
// loading them straight from halley (no proxy) works.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { assertEqual, checkFor, root } from './harness.mjs';
import { ezPage, cfPage, gotFor } from './pages.mjs';

export const tests = [];
const test = (name, fn) => tests.push({ name: 'served by halley: ' + name, fn });

const files = {
  '/ezcomet.js': 'ezcomet.js',
  '/ezcomet.min.js': 'ezcomet.min.js',
  '/latest/cometify.js': 'cometify.js',
  '/latest/cometify.min.js': 'cometify.min.js',
};

test('the four JS-01 paths: the built files, JavaScript type, ETag and 304, Cache-Control', async (t) => {
  const h = await t.halley();
  for (const [path, file] of Object.entries(files)) {
    const r = await fetch(h.base + path);
    const body = Buffer.from(await r.arrayBuffer());
    assertEqual([r.status, r.headers.get('content-type')], [200, 'application/javascript; charset=utf-8'], path);
    if (!body.equals(readFileSync(join(root, 'jsclient', 'dist', file)))) throw new Error(`${path}: not jsclient/dist/${file}`);
    const etag = r.headers.get('etag');
    if (!etag || !r.headers.get('cache-control')) throw new Error(`${path}: ETag ${etag}, Cache-Control ${r.headers.get('cache-control')}`);
    const again = await fetch(h.base + path, { headers: { 'If-None-Match': etag } });
    assertEqual(again.status, 304, `${path} revalidated`);
  }
});

test('pages loading the scripts straight from halley receive messages and pushes', async (t) => {
  const h = await t.halley();
  const ez = await t.page(ezPage(h.base + '/ezcomet.min.js', h.user, [{ name: 's', opts: { channel: 'direct', auto_tick: false } }]));
  const cf = await t.page(cfPage(h.base + '/latest/cometify.min.js', [{ name: 'l', opts: { apiKey: h.cfKey, identifiers: ['direct'] } }]));
  await checkFor('the listener up', async () => (await cf.evaluate(() => R.l.transports.at(-1))) === 'websocket');
  await h.write('direct', 'to ezcomet');
  await h.push('direct', 'to cometify');
  assertEqual(await gotFor(ez, 's', 1), ['to ezcomet'], 'ezcomet');
  assertEqual(await gotFor(cf, 'l', 1), [['to cometify', 1, 'direct']], 'cometify');
});

// Test pages and what they saw. Each page records what its clients report
// into window.R[name]: got (callback arguments), gaps, errors, transports
// (onTransport calls).
import { checkFor } from './harness.mjs';

const recorder = `
window.R = {};
function rec(name) {
  return (R[name] = { got: [], gaps: [], errors: [], transports: [] });
}`;

// ezPage subscribes once per entry of subs: {name, opts} where opts are
// the subscribe options besides user_name and the callbacks.
export function ezPage(src, user, subs, extra = '') {
  const body = subs
    .map(
      (s) => `(function () {
  var r = rec(${JSON.stringify(s.name)});
  window[${JSON.stringify('sub_' + s.name)}] = ezcomet.subscribe(Object.assign(${JSON.stringify(s.opts)}, {
    user_name: ${JSON.stringify(user)},
    callback: function (m) { r.got.push(m); },
    onGap: function (g) { r.gaps.push(g); },
    onError: function (e) { r.errors.push(e); },
    onTransport: function (n) { r.transports.push(n); }
  }));
})();`
    )
    .join('\n');
  return `<!doctype html><meta charset="utf-8"><title>ezcomet test</title>
<script src="${src}"></script>
<script>${recorder}
${extra}
${body}
</script>`;
}

// cfPage starts one listener per entry of listeners: {name, opts} where
// opts are init's options besides the callbacks; a listener with
// globalCallback: true passes its callback by a global function's name.
export function cfPage(src, listeners, extra = '') {
  const body = listeners
    .map((l) => {
      const { globalCallback, ...opts } = l.opts;
      const fn = `cb_${l.name}`;
      return `(function () {
  var r = rec(${JSON.stringify(l.name)});
  window[${JSON.stringify(fn)}] = function (data, id, identifier) { r.got.push([data, id, identifier]); };
  window[${JSON.stringify('lis_' + l.name)}] = Cometify.init(Object.assign(${JSON.stringify(opts)}, {
    callback: ${globalCallback ? JSON.stringify(fn) : `function (data, id, identifier) { window[${JSON.stringify(fn)}](data, id, identifier); }`},
    onGap: function (g) { r.gaps.push(g); },
    onError: function (e) { r.errors.push(e); },
    onTransport: function (n) { r.transports.push(n); }
  })).start();
})();`;
    })
    .join('\n');
  return `<!doctype html><meta charset="utf-8"><title>cometify test</title>
<script src="${src}"></script>
<script>${recorder}
${extra}
${body}
</script>`;
}

export const results = (page) => page.evaluate(() => window.R);

// serve starts a halley and an edge proxy in front of it, and gives the URL
// a page loads script from (e.g. '/ezcomet.min.js') through the edge.
export async function serve(t, script, args = [], mode = {}) {
  const h = await t.halley(args);
  const e = await t.edge(h, mode);
  return { h, e, src: e.base + script };
}

// got is what the client name on page p passed to its callback so far.
export const got = async (p, name) => (await results(p))[name].got;

// gotFor waits until the client has had exactly n callbacks and returns
// their arguments; more than n fails at once.
export const gotFor = (p, name, n, ms) =>
  checkFor(
    `${n} callbacks on ${name}`,
    async () => {
      const g = await got(p, name);
      if (g.length > n) throw Object.assign(new Error(`too many: ${JSON.stringify(g)}`), { fatal: true });
      if (g.length < n) throw new Error(`so far: ${JSON.stringify(g)}`);
      return g;
    },
    ms
  );

// refusedFor waits until the client name has reported an error to
// onError and returns its whole record.
export const refusedFor = (p, name, ms) =>
  checkFor(
    `an error on ${name}`,
    async () => {
      const r = (await results(p))[name];
      return r.errors.length && r;
    },
    ms
  );

// fallbacks are the edge proxy's modes that push a client down the
// ladder, and the transport it must end on.
export const fallbacks = [
  ['WebSocket blocked by a proxy → SSE', { blockWS: true }, 'sse'],
  ['WebSocket and SSE blocked → long-poll', { blockWS: true, blockSSE: true }, 'poll'],
  ['WebSocket blocked and CORS stripped → JSONP', { blockWS: true, noCORS: true }, 'jsonp'],
];

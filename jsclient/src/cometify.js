// cometify.js: the Cometify JavaScript API (SPEC JS-03) for Halley.
//
//   Cometify.init({apiKey, identifiers, secureKey, callback}).start()
//
// identifiers: 'chat', ['metrics', 'tweets'] or {metrics: 59, tweets: 100}
// (internal ids: resume after that push_id). callback: a function or the
// name of a global function, called as callback(data, id, identifier) with
// the identifier spelled as given to init. Optional: onGap(identifier),
// onError({status, msg}), onTransport(name), transports, retryBase,
// retryMax, deadAfter, pollTimeout. stop() ends the listener.
//
// The listener keeps a resume point per identifier (SPEC X-04): the
// server's first "since", then the id of each push. Every reconnect sends
// it in the id form, so nothing is lost or repeated across drops.
import { Feed, scriptOrigin, callSafely } from './transport.js';

var IDENTIFIER = /^[a-zA-Z][a-zA-Z0-9_]{0,59}$/;

function Listener(o) {
  if (!o || o.apiKey == null || o.apiKey === '') throw new Error('Cometify.init: apiKey is required');
  var ids = o.identifiers;
  this.names = [];
  this.since = null;
  if (typeof ids === 'string') this.names = [ids];
  else if (Array.isArray(ids)) this.names = ids.map(String);
  else if (ids && typeof ids === 'object') {
    this.since = {};
    for (var k in ids) {
      if (!Object.prototype.hasOwnProperty.call(ids, k)) continue;
      this.names.push(k);
      this.since[k.toLowerCase()] = Math.max(0, parseInt(ids[k], 10) || 0);
    }
  }
  if (!this.names.length) throw new Error('Cometify.init: identifiers are required');
  this.byLower = {};
  for (var i = 0; i < this.names.length; i++) {
    if (!IDENTIFIER.test(this.names[i])) throw new Error('Cometify.init: bad identifier ' + this.names[i]);
    this.byLower[this.names[i].toLowerCase()] = this.names[i];
  }
  this.apiKey = String(o.apiKey);
  this.secureKey = o.secureKey ? String(o.secureKey) : '';
  this.callback = o.callback;
  this.onGap = o.onGap;
  this.origin = (o.url || scriptOrigin).replace(/\/+$/, '');
  this.feed = new Feed(this, o);
}

// list is the identifiers parameter: names as given (the secureKey is
// computed over them, case kept), with ids once a resume point is known.
Listener.prototype.list = function () {
  var since = this.since;
  return this.names
    .map(function (n) {
      return since ? n + ':' + (since[n.toLowerCase()] || 0) : n;
    })
    .join(',');
};

Listener.prototype.url = function (kind) {
  var path = kind === 'websocket' ? '/listen' : kind === 'sse' ? '/sse' : '/poll';
  var u = this.origin + '/' + encodeURIComponent(this.apiKey) + path + '?identifiers=' + encodeURIComponent(this.list());
  if (this.secureKey) u += '&secureKey=' + encodeURIComponent(this.secureKey);
  return u;
};

// advance takes a resume point "a:3,b:7", never moving an id backwards.
Listener.prototype.advance = function (list) {
  if (typeof list !== 'string' || !list) return;
  var since = this.since || {};
  var parts = list.split(',');
  for (var i = 0; i < parts.length; i++) {
    var c = parts[i].lastIndexOf(':');
    if (c < 0) continue;
    var name = parts[i].slice(0, c).toLowerCase();
    var id = parseInt(parts[i].slice(c + 1), 10);
    if (!(name in this.byLower) || !(id >= 0)) continue;
    if (!(since[name] >= id)) since[name] = id;
  }
  this.since = since;
};

Listener.prototype.push = function (p) {
  var lower = String(p.identifier).toLowerCase();
  var name = this.byLower[lower];
  if (name === undefined) return;
  if (this.since && this.since[lower] >= p.id) return;
  if (!this.since) this.since = {};
  this.since[lower] = p.id;
  var cb = this.callback;
  if (typeof cb === 'string') {
    var path = cb.split('.');
    cb = window;
    for (var i = 0; i < path.length && cb; i++) cb = cb[path[i]];
  }
  if (typeof cb === 'function') callSafely(cb, [p.data, p.id, name]);
};

Listener.prototype.gap = function (identifier) {
  var name = this.byLower[String(identifier).toLowerCase()];
  if (this.onGap && name !== undefined) callSafely(this.onGap, [name]);
};

// frame: {"since":..} first, then {"gap":true,"identifier":..} per
// identifier with a gap, then pushes; keys it does not know are ignored.
Listener.prototype.frame = function (v) {
  if (!v || typeof v !== 'object') return;
  if ('data' in v) this.push(v);
  else if (v.gap) this.gap(v.identifier);
  else if ('since' in v) this.advance(v.since);
};

Listener.prototype.event = function (type, data, lastEventId) {
  var v;
  try {
    v = JSON.parse(data);
  } catch (e) {
    return;
  }
  if (type === 'gap') this.gap(v.identifier);
  else this.push(v);
  this.advance(lastEventId);
};

Listener.prototype.answer = function (v) {
  if (v.gap) {
    var g = v.gap_identifiers || [];
    for (var i = 0; i < g.length; i++) this.gap(g[i]);
  }
  var p = v.pushes || [];
  for (var j = 0; j < p.length; j++) this.push(p[j]);
  this.advance(v.since);
};

// beforeSSE: the SSE stream's opening "id:" line is not visible to a page
// (EventSource has no lastEventId), so a listener that has no resume point
// yet asks for one with an immediate poll, and opens the stream in the id
// form. The browser's own reconnects use Last-Event-ID; this covers the
// client's.
Listener.prototype.beforeSSE = function (done) {
  if (this.since || typeof fetch !== 'function') {
    done(true);
    return;
  }
  var self = this;
  fetch(this.url('poll') + '&timeout=0', { cache: 'no-store' })
    .then(function (r) {
      return r.json();
    })
    .then(
      function (v) {
        if (v.code === 'ok') self.answer(v);
        done(v.code === 'ok');
      },
      function () {
        done(false);
      }
    );
};

Listener.prototype.start = function () {
  this.feed.start();
  return this;
};

Listener.prototype.stop = function () {
  this.feed.stop();
  return this;
};

// transport names the transport in use, or null while connecting.
Listener.prototype.transport = function () {
  return this.feed.transport;
};

window.Cometify = {
  init: function (o) {
    return new Listener(o);
  },
};

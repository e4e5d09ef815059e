// ezcomet.js: the EZComet JavaScript API (SPEC JS-02) for Halley.
//
//   ezcomet.subscribe({user_name, channel, callback, tick, auto_tick, msg_type})
//
// as the EZComet seed documents it, plus optional onGap, onError,
// onTransport, transports, retryBase, retryMax, deadAfter, pollTimeout.
// subscribe returns a subscription with unsubscribe(); ezcomet.unsubscribe
// ({user_name, channel}) ends every subscription to that channel.
import { Feed, scriptOrigin, callSafely } from './transport.js';

var COOKIE_PREFIX = 'ezcomet_tick_';
var COOKIE_MAX_AGE = 7 * 24 * 3600;
// Ticks remembered per subscription to drop a message seen twice.
var RECENT_TICKS = 512;

var subscriptions = [];

function readCookie(name) {
  var parts = document.cookie ? document.cookie.split('; ') : [];
  for (var i = 0; i < parts.length; i++) {
    var eq = parts[i].indexOf('=');
    if (parts[i].slice(0, eq) === name) {
      try {
        return decodeURIComponent(parts[i].slice(eq + 1));
      } catch (e) {
        return null;
      }
    }
  }
  return null;
}

function writeCookie(name, value) {
  document.cookie =
    name + '=' + encodeURIComponent(value) + '; path=/; max-age=' + COOKIE_MAX_AGE + '; SameSite=Lax';
}

function Subscription(o) {
  if (!o || !o.user_name || !o.channel) throw new Error('ezcomet.subscribe: user_name and channel are required');
  if (typeof o.callback !== 'function') throw new Error('ezcomet.subscribe: callback must be a function');
  this.user_name = String(o.user_name);
  this.channel = String(o.channel);
  this.qname = this.user_name + '-' + this.channel;
  this.callback = o.callback;
  this.msgType = o.msg_type || 'string';
  // The seed's advice "to set tick manually, set auto_tick to false" makes
  // true the default.
  this.autoTick = o.auto_tick !== false;
  this.cookie = COOKIE_PREFIX + this.qname;
  this.onGap = o.onGap;
  this.onError = o.onError;
  this.origin = (o.url || scriptOrigin).replace(/\/+$/, '');
  var saved = this.autoTick ? readCookie(this.cookie) : null;
  this.tick = saved != null ? saved : o.tick == null ? null : String(o.tick);
  this.recent = [];
  this.feed = new Feed(this, o);
}

Subscription.prototype.url = function (kind) {
  var path = kind === 'websocket' ? '/read/ws' : kind === 'sse' ? '/read/sse' : '/read';
  var u = this.origin + path + '?qname=' + encodeURIComponent(this.qname);
  if (this.tick != null) u += '&tick=' + encodeURIComponent(this.tick);
  return u;
};

Subscription.prototype.deliver = function (tick, msg) {
  if (this.recent.indexOf(tick) >= 0) return;
  this.recent.push(tick);
  if (this.recent.length > RECENT_TICKS) this.recent.shift();
  this.tick = tick;
  if (this.autoTick) writeCookie(this.cookie, tick);
  var arg = msg;
  if (this.msgType === 'raw') arg = [tick, msg];
  else if (this.msgType === 'json') {
    try {
      arg = JSON.parse(msg);
    } catch (e) {
      if (this.onError) callSafely(this.onError, [{ status: 0, msg: 'message is not JSON', tick: tick, data: msg }]);
      return;
    }
  }
  callSafely(this.callback, [arg]);
};

Subscription.prototype.gap = function () {
  if (this.onGap) callSafely(this.onGap, [{ channel: this.channel, tick: this.tick }]);
};

Subscription.prototype.frame = function (v) {
  if (Array.isArray(v)) this.deliver(String(v[0]), String(v[1]));
  else if (v && v.gap) this.gap();
};

Subscription.prototype.event = function (type, data, lastEventId) {
  if (type === 'gap') this.gap();
  else this.deliver(lastEventId, data);
};

Subscription.prototype.answer = function (v) {
  if (v.gap) this.gap();
  var m = v.messages || [];
  for (var i = 0; i < m.length; i++) this.deliver(String(m[i][0]), String(m[i][1]));
};

Subscription.prototype.unsubscribe = function () {
  this.feed.stop();
  var i = subscriptions.indexOf(this);
  if (i >= 0) subscriptions.splice(i, 1);
};
Subscription.prototype.stop = Subscription.prototype.unsubscribe;

// transport names the transport in use ('websocket', 'sse', 'poll',
// 'jsonp'), or null while connecting.
Subscription.prototype.transport = function () {
  return this.feed.transport;
};

var ezcomet = {
  subscribe: function (o) {
    var s = new Subscription(o);
    subscriptions.push(s);
    s.feed.start();
    return s;
  },
  // unsubscribe ends a subscription given itself, or every subscription to
  // {user_name, channel}, or all of them when called without an argument.
  unsubscribe: function (which) {
    subscriptions.slice().forEach(function (s) {
      if (
        !which ||
        which === s ||
        (which.channel === s.channel && (!which.user_name || String(which.user_name) === s.user_name))
      )
        s.unsubscribe();
    });
  },
};

window.ezcomet = ezcomet;

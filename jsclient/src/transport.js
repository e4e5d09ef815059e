// Shared by ezcomet.js and cometify.js: the transport ladder (JS-04),
// reconnects with full-jitter exponential backoff, the drain hint
// and a silence watchdog. A protocol adapter (EZComet or Cometify) builds
// the URLs from its resume point and turns what arrives into callbacks;
// this file knows nothing of ticks, ids or identifiers.
//
// Everything here runs on the page's single thread; callbacks from stale
// connections are ignored by comparing a generation counter.

// The ladder, best first. "jsonp" is long-poll through a <script> tag, for
// pages where a cross-origin fetch is refused.
export var LADDER = ['websocket', 'sse', 'poll', 'jsonp'];

// The origin the API is served from: the origin of the <script> that
// loaded this file, so a page written for the hosted services works by
// changing only the script's URL. Read once, while the script runs.
export var scriptOrigin = (function () {
  var s = typeof document !== 'undefined' ? document.currentScript : null;
  if (s && s.src) {
    try {
      return new URL(s.src, location.href).origin;
    } catch (e) {
      // fall through to the page's own origin
    }
  }
  return location.origin;
})();

// Errors whose retry cannot help: the page's configuration is wrong.
var FATAL = { 400: true, 401: true, 403: true, 404: true };

var jsonpSeq = 0;

function supported(name) {
  switch (name) {
    case 'websocket':
      return typeof WebSocket === 'function';
    case 'sse':
      return typeof EventSource === 'function';
    case 'poll':
      return typeof fetch === 'function' && typeof AbortController === 'function';
    case 'jsonp':
      return typeof document !== 'undefined';
  }
  return false;
}

// later calls fn outside the current call stack, so an exception thrown by
// a page callback is reported in the console without breaking the feed.
export function callSafely(fn, args) {
  try {
    fn.apply(null, args);
  } catch (e) {
    setTimeout(function () {
      throw e;
    }, 0);
  }
}

// Feed keeps one live connection for an adapter:
//
//   adapter.url(kind)        URL for 'websocket' | 'sse' | 'poll' (no timeout
//                            or callback parameter), from the resume point
//   adapter.frame(obj)       a parsed WebSocket frame
//   adapter.event(type, data, lastEventId)   an SSE event ('message' | 'gap')
//   adapter.answer(obj)      a poll answer with code "ok"
//   adapter.beforeSSE(done)  optional: called before opening SSE, done(ok)
//
// opts: transports (subset of LADDER, in order), retryBase / retryMax (ms,
// backoff), deadAfter (ms of silence on a WebSocket or SSE stream before it
// is taken for dead; over WebSocket the client sends "ping" every
// deadAfter/3 and the server answers {"pong":true}, so only a dead
// WebSocket stays silent that long; an SSE stream without events for that
// long is reopened, resuming by its ids), pollTimeout (s), upgradeAfter (ms on a lower rung,
// reached because higher ones failed, before trying the higher ones
// again), onTransport(name), onError(err).
export function Feed(adapter, opts) {
  this.a = adapter;
  this.ladder = (opts.transports || LADDER).filter(function (n) {
    return LADDER.indexOf(n) >= 0 && supported(n);
  });
  this.retryBase = opts.retryBase || 1000;
  this.retryMax = opts.retryMax || 30000;
  this.deadAfter = opts.deadAfter || 75000;
  this.pingEvery = Math.max(1000, Math.floor(this.deadAfter / 3));
  this.pollTimeout = opts.pollTimeout == null ? 30 : opts.pollTimeout;
  this.upgradeAfter = opts.upgradeAfter || 60000;
  this.onTransport = opts.onTransport;
  this.onError = opts.onError;
  this.blocked = {};
  this.attempt = 0;
  this.gen = 0;
  this.stopped = true;
  this.transport = null;
  this.closer = null;
  this.timer = null;
  this.watchdog = null;
  this.upgrade = null;
  this.failedInWalk = [];
}

Feed.prototype.start = function () {
  if (!this.stopped) return;
  this.stopped = false;
  this.walk(0);
};

Feed.prototype.stop = function () {
  this.stopped = true;
  this.gen++;
  this.teardown();
  clearTimeout(this.timer);
  this.setTransport(null);
};

Feed.prototype.teardown = function () {
  clearTimeout(this.watchdog);
  clearTimeout(this.upgrade);
  this.watchdog = this.upgrade = null;
  if (this.closer) {
    var c = this.closer;
    this.closer = null;
    c();
  }
};

Feed.prototype.setTransport = function (name) {
  if (this.transport === name) return;
  this.transport = name;
  if (this.onTransport) callSafely(this.onTransport, [name]);
};

Feed.prototype.report = function (err) {
  if (this.onError) callSafely(this.onError, [err]);
};

// walk tries the ladder from index i, skipping transports found blocked.
Feed.prototype.walk = function (i) {
  if (this.stopped) return;
  if (i === 0) this.failedInWalk = [];
  while (i < this.ladder.length && this.blocked[this.ladder[i]]) i++;
  if (i >= this.ladder.length) {
    this.probe();
    return;
  }
  this.open(i);
};

// probe runs when every rung failed to open. A browser hides the status a
// WebSocket or SSE request was refused with (429 cap, 403 secureKey), so a
// short waiting poll asks the server for it, as JSON, for onError; then
// the client retries after a backoff step, unless retrying cannot help.
Feed.prototype.probe = function () {
  var self = this;
  var gen = ++this.gen;
  if (typeof fetch !== 'function') {
    this.later();
    return;
  }
  var after = function (v) {
    if (gen !== self.gen || self.stopped) return;
    if (v && v.code === 'error') {
      self.report({ status: v.status, msg: v.msg, transport: null });
      if (FATAL[v.status]) {
        self.stop();
        return;
      }
    }
    self.later();
  };
  fetch(this.a.url('poll') + '&timeout=1', { cache: 'no-store' })
    .then(function (r) {
      return r.json();
    })
    .then(after, function () {
      after(null);
    });
};

// later reconnects after delay ms, or after a full-jitter backoff step.
Feed.prototype.later = function (delay) {
  var self = this;
  if (delay == null) {
    var ceiling = Math.min(this.retryMax, this.retryBase * Math.pow(2, this.attempt));
    delay = Math.random() * ceiling;
    this.attempt++;
  }
  this.setTransport(null);
  clearTimeout(this.timer);
  this.timer = setTimeout(function () {
    self.walk(0);
  }, delay);
};

Feed.prototype.open = function (i) {
  var self = this;
  var gen = ++this.gen;
  var name = this.ladder[i];
  var live = function () {
    return gen === self.gen && !self.stopped;
  };
  var ctl = {
    // opened: the transport works; transports above it that failed in this
    // walk are blocked here (a proxy or a browser policy), not down.
    opened: function () {
      if (!live()) return;
      self.attempt = 0;
      for (var k = 0; k < self.failedInWalk.length; k++) self.blocked[self.failedInWalk[k]] = true;
      self.failedInWalk = [];
      self.setTransport(name);
      ctl.alive();
      // What failed may have been passing trouble (a cap, a restart), not
      // a block: now and then, resume from the top of the ladder.
      if (i > 0 && self.blocked[self.ladder[0]]) {
        // The pause lets the server see this connection close first: it
        // may hold the listener slot a higher rung needs (the per-IP cap).
        self.upgrade = setTimeout(function () {
          if (!live()) return;
          self.blocked = {};
          ctl.dropped(500);
        }, self.upgradeAfter * (0.5 + Math.random() / 2));
      }
    },
    // alive: something arrived; WebSocket and SSE restart the watchdog.
    alive: function () {
      if (!live() || (name !== 'websocket' && name !== 'sse')) return;
      clearTimeout(self.watchdog);
      self.watchdog = setTimeout(function () {
        if (live()) ctl.dropped();
      }, self.deadAfter);
    },
    // failed: it never opened; try the next rung at once.
    failed: function () {
      if (!live()) return;
      self.teardown();
      self.failedInWalk.push(name);
      self.walk(i + 1);
    },
    // dropped: it worked, then stopped; resume after delay (or backoff).
    dropped: function (delay) {
      if (!live()) return;
      self.gen++;
      self.teardown();
      self.later(delay);
    },
    // refused: the server answered with an error. Retry later unless a
    // retry cannot help (bad key, bad secureKey, unknown user).
    refused: function (status, body) {
      if (!live()) return;
      var err = { status: status, msg: (body && body.msg) || 'HTTP ' + status, transport: name };
      self.report(err);
      // A browser hides why a WebSocket or SSE request failed: it may have
      // been this same refusal (a 429 cap), not a block. Try them again.
      self.blocked = {};
      if (FATAL[status]) {
        self.stop();
        return;
      }
      ctl.dropped();
    },
  };
  var opener = OPENERS[name];
  if (name === 'sse' && this.a.beforeSSE) {
    this.closer = function () {};
    this.a.beforeSSE(function (ok) {
      if (!live()) return;
      if (!ok) ctl.failed();
      else self.closer = opener(self, ctl);
    });
    return;
  }
  this.closer = opener(this, ctl);
};

// drainDelay spreads reconnects after a WebSocket close 1001 "restart"
// which carries no delay of its own.
function drainDelay() {
  return 250 + Math.random() * 2750;
}

var OPENERS = {
  websocket: function (f, ctl) {
    var ws,
      open = false;
    try {
      ws = new WebSocket(f.a.url('websocket').replace(/^http/, 'ws'));
    } catch (e) {
      setTimeout(ctl.failed, 0);
      return function () {};
    }
    var pinger;
    ws.onopen = function () {
      open = true;
      ctl.opened();
      // Browsers hide the server's pings: ask for a {"pong":true} now and
      // then, so a quiet listener is not taken for a dead one.
      pinger = setInterval(function () {
        try {
          ws.send('ping');
        } catch (e) {
          // closing; onclose follows
        }
      }, f.pingEvery);
    };
    ws.onmessage = function (ev) {
      ctl.alive();
      var v;
      try {
        v = JSON.parse(ev.data);
      } catch (e) {
        return;
      }
      f.a.frame(v);
    };
    ws.onclose = function (ev) {
      clearInterval(pinger);
      if (!open) ctl.failed();
      else if (ev.code === 1001) ctl.dropped(drainDelay());
      else ctl.dropped();
    };
    return function () {
      clearInterval(pinger);
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try {
        ws.close();
      } catch (e) {
        // already closing
      }
    };
  },

  // sse: after it has opened once, the browser's own reconnect is kept: it
  // sends Last-Event-ID and honours the server's "retry:" drain hint. The
  // client steps in only when the browser gives up (readyState CLOSED).
  sse: function (f, ctl) {
    var es = new EventSource(f.a.url('sse')),
      open = false;
    es.onopen = function () {
      if (!open) {
        open = true;
        ctl.opened();
      } else ctl.alive();
    };
    es.onmessage = function (ev) {
      ctl.alive();
      f.a.event('message', ev.data, ev.lastEventId);
    };
    es.addEventListener('gap', function (ev) {
      ctl.alive();
      f.a.event('gap', ev.data, ev.lastEventId);
    });
    // The server's visible heartbeat (Cometify streams): quiet, not dead.
    es.addEventListener('ping', function () {
      ctl.alive();
    });
    es.onerror = function () {
      if (!open) {
        es.close();
        ctl.failed();
      } else if (es.readyState === 2) ctl.dropped();
    };
    return function () {
      es.onopen = es.onmessage = es.onerror = null;
      es.close();
    };
  },

  poll: function (f, ctl) {
    return pollLoop(f, ctl, function (url, done) {
      var ac = new AbortController();
      var t = setTimeout(function () {
        ac.abort();
      }, (f.pollTimeout + 15) * 1000);
      fetch(url, { signal: ac.signal, cache: 'no-store' })
        .then(function (r) {
          return r.json().then(function (v) {
            return [r.status, v];
          });
        })
        .then(
          function (sv) {
            clearTimeout(t);
            done(sv[0], sv[1]);
          },
          function () {
            clearTimeout(t);
            done(0, null);
          }
        );
      return function () {
        clearTimeout(t);
        ac.abort();
      };
    });
  },

  // jsonp: a browser runs no script answered with an error status, so an
  // error answer looks like a network failure here.
  jsonp: function (f, ctl) {
    return pollLoop(f, ctl, function (url, done) {
      var name = '__halley_jsonp_' + ++jsonpSeq;
      var s = document.createElement('script');
      var finished = false;
      var finish = function (status, v) {
        if (finished) return;
        finished = true;
        clearTimeout(t);
        delete window[name];
        if (s.parentNode) s.parentNode.removeChild(s);
        done(status, v);
      };
      var t = setTimeout(function () {
        finish(0, null);
      }, (f.pollTimeout + 15) * 1000);
      window[name] = function (v) {
        finish(v && v.status ? v.status : 200, v);
      };
      s.onerror = function () {
        finish(0, null);
      };
      s.src = url + '&callback=' + name;
      // A script inserted before the load event delays it: a long-poll
      // would keep the page "loading" for its whole wait.
      var insert = function () {
        if (!finished) document.head.appendChild(s);
      };
      if (document.readyState === 'complete') insert();
      else window.addEventListener('load', insert);
      return function () {
        finished = true;
        clearTimeout(t);
        window[name] = function () {};
        if (s.parentNode) s.parentNode.removeChild(s);
      };
    });
  },
};

// pollLoop runs long-polls one after another through request(url, done),
// which answers done(status, body) with status 0 for a network failure.
function pollLoop(f, ctl, request) {
  var open = false,
    dead = false,
    cancel = null,
    wait = null;
  // The first request does not wait: it proves the transport (and reports
  // it) at once, and for Cometify's plain form it returns the resume point.
  function next() {
    if (dead) return;
    cancel = request(f.a.url('poll') + '&timeout=' + (open ? f.pollTimeout : 0), function (status, v) {
      cancel = null;
      if (dead) return;
      if (status === 0 || !v) {
        if (!open) ctl.failed();
        else ctl.dropped();
        return;
      }
      if (v.code !== 'ok') {
        ctl.refused(v.status || status, v);
        return;
      }
      if (!open) {
        open = true;
        ctl.opened();
      }
      f.a.answer(v);
      if (dead) return;
      if (v.retry_ms > 0) wait = setTimeout(next, v.retry_ms);
      else next();
    });
  }
  next();
  return function () {
    dead = true;
    clearTimeout(wait);
    if (cancel) cancel();
  };
}

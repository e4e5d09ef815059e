/* ezcomet.js for Halley, built from jsclient/src by esbuild 0.28.2. */
(() => {
  // src/transport.js
  var LADDER = ["websocket", "sse", "poll", "jsonp"];
  var scriptOrigin = (function() {
    var s = typeof document !== "undefined" ? document.currentScript : null;
    if (s && s.src) {
      try {
        return new URL(s.src, location.href).origin;
      } catch (e) {
      }
    }
    return location.origin;
  })();
  var FATAL = { 400: true, 401: true, 403: true, 404: true };
  var jsonpSeq = 0;
  function supported(name) {
    switch (name) {
      case "websocket":
        return typeof WebSocket === "function";
      case "sse":
        return typeof EventSource === "function";
      case "poll":
        return typeof fetch === "function" && typeof AbortController === "function";
      case "jsonp":
        return typeof document !== "undefined";
    }
    return false;
  }
  function callSafely(fn, args) {
    try {
      fn.apply(null, args);
    } catch (e) {
      setTimeout(function() {
        throw e;
      }, 0);
    }
  }
  function Feed(adapter, opts) {
    this.a = adapter;
    this.ladder = (opts.transports || LADDER).filter(function(n) {
      return LADDER.indexOf(n) >= 0 && supported(n);
    });
    this.retryBase = opts.retryBase || 1e3;
    this.retryMax = opts.retryMax || 3e4;
    this.deadAfter = opts.deadAfter || 75e3;
    this.pingEvery = Math.max(1e3, Math.floor(this.deadAfter / 3));
    this.pollTimeout = opts.pollTimeout == null ? 30 : opts.pollTimeout;
    this.upgradeAfter = opts.upgradeAfter || 6e4;
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
  Feed.prototype.start = function() {
    if (!this.stopped) return;
    this.stopped = false;
    this.walk(0);
  };
  Feed.prototype.stop = function() {
    this.stopped = true;
    this.gen++;
    this.teardown();
    clearTimeout(this.timer);
    this.setTransport(null);
  };
  Feed.prototype.teardown = function() {
    clearTimeout(this.watchdog);
    clearTimeout(this.upgrade);
    this.watchdog = this.upgrade = null;
    if (this.closer) {
      var c = this.closer;
      this.closer = null;
      c();
    }
  };
  Feed.prototype.setTransport = function(name) {
    if (this.transport === name) return;
    this.transport = name;
    if (this.onTransport) callSafely(this.onTransport, [name]);
  };
  Feed.prototype.report = function(err) {
    if (this.onError) callSafely(this.onError, [err]);
  };
  Feed.prototype.walk = function(i) {
    if (this.stopped) return;
    if (i === 0) this.failedInWalk = [];
    while (i < this.ladder.length && this.blocked[this.ladder[i]]) i++;
    if (i >= this.ladder.length) {
      this.probe();
      return;
    }
    this.open(i);
  };
  Feed.prototype.probe = function() {
    var self = this;
    var gen = ++this.gen;
    if (typeof fetch !== "function") {
      this.later();
      return;
    }
    var after = function(v) {
      if (gen !== self.gen || self.stopped) return;
      if (v && v.code === "error") {
        self.report({ status: v.status, msg: v.msg, transport: null });
        if (FATAL[v.status]) {
          self.stop();
          return;
        }
      }
      self.later();
    };
    fetch(this.a.url("poll") + "&timeout=1", { cache: "no-store" }).then(function(r) {
      return r.json();
    }).then(after, function() {
      after(null);
    });
  };
  Feed.prototype.later = function(delay) {
    var self = this;
    if (delay == null) {
      var ceiling = Math.min(this.retryMax, this.retryBase * Math.pow(2, this.attempt));
      delay = Math.random() * ceiling;
      this.attempt++;
    }
    this.setTransport(null);
    clearTimeout(this.timer);
    this.timer = setTimeout(function() {
      self.walk(0);
    }, delay);
  };
  Feed.prototype.open = function(i) {
    var self = this;
    var gen = ++this.gen;
    var name = this.ladder[i];
    var live = function() {
      return gen === self.gen && !self.stopped;
    };
    var ctl = {
      // opened: the transport works; transports above it that failed in this
      // walk are blocked here (a proxy or a browser policy), not down.
      opened: function() {
        if (!live()) return;
        self.attempt = 0;
        for (var k = 0; k < self.failedInWalk.length; k++) self.blocked[self.failedInWalk[k]] = true;
        self.failedInWalk = [];
        self.setTransport(name);
        ctl.alive();
        if (i > 0 && self.blocked[self.ladder[0]]) {
          self.upgrade = setTimeout(function() {
            if (!live()) return;
            self.blocked = {};
            ctl.dropped(500);
          }, self.upgradeAfter * (0.5 + Math.random() / 2));
        }
      },
      // alive: something arrived; WebSocket and SSE restart the watchdog.
      alive: function() {
        if (!live() || name !== "websocket" && name !== "sse") return;
        clearTimeout(self.watchdog);
        self.watchdog = setTimeout(function() {
          if (live()) ctl.dropped();
        }, self.deadAfter);
      },
      // failed: it never opened; try the next rung at once.
      failed: function() {
        if (!live()) return;
        self.teardown();
        self.failedInWalk.push(name);
        self.walk(i + 1);
      },
      // dropped: it worked, then stopped; resume after delay (or backoff).
      dropped: function(delay) {
        if (!live()) return;
        self.gen++;
        self.teardown();
        self.later(delay);
      },
      // refused: the server answered with an error. Retry later unless a
      // retry cannot help (bad key, bad secureKey, unknown user).
      refused: function(status, body) {
        if (!live()) return;
        var err = { status, msg: body && body.msg || "HTTP " + status, transport: name };
        self.report(err);
        self.blocked = {};
        if (FATAL[status]) {
          self.stop();
          return;
        }
        ctl.dropped();
      }
    };
    var opener = OPENERS[name];
    if (name === "sse" && this.a.beforeSSE) {
      this.closer = function() {
      };
      this.a.beforeSSE(function(ok) {
        if (!live()) return;
        if (!ok) ctl.failed();
        else self.closer = opener(self, ctl);
      });
      return;
    }
    this.closer = opener(this, ctl);
  };
  function drainDelay() {
    return 250 + Math.random() * 2750;
  }
  var OPENERS = {
    websocket: function(f, ctl) {
      var ws, open = false;
      try {
        ws = new WebSocket(f.a.url("websocket").replace(/^http/, "ws"));
      } catch (e) {
        setTimeout(ctl.failed, 0);
        return function() {
        };
      }
      var pinger;
      ws.onopen = function() {
        open = true;
        ctl.opened();
        pinger = setInterval(function() {
          try {
            ws.send("ping");
          } catch (e) {
          }
        }, f.pingEvery);
      };
      ws.onmessage = function(ev) {
        ctl.alive();
        var v;
        try {
          v = JSON.parse(ev.data);
        } catch (e) {
          return;
        }
        f.a.frame(v);
      };
      ws.onclose = function(ev) {
        clearInterval(pinger);
        if (!open) ctl.failed();
        else if (ev.code === 1001) ctl.dropped(drainDelay());
        else ctl.dropped();
      };
      return function() {
        clearInterval(pinger);
        ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
        try {
          ws.close();
        } catch (e) {
        }
      };
    },
    // sse: after it has opened once, the browser's own reconnect is kept: it
    // sends Last-Event-ID and honours the server's "retry:" drain hint. The
    // client steps in only when the browser gives up (readyState CLOSED).
    sse: function(f, ctl) {
      var es = new EventSource(f.a.url("sse")), open = false;
      es.onopen = function() {
        if (!open) {
          open = true;
          ctl.opened();
        } else ctl.alive();
      };
      es.onmessage = function(ev) {
        ctl.alive();
        f.a.event("message", ev.data, ev.lastEventId);
      };
      es.addEventListener("gap", function(ev) {
        ctl.alive();
        f.a.event("gap", ev.data, ev.lastEventId);
      });
      es.addEventListener("ping", function() {
        ctl.alive();
      });
      es.onerror = function() {
        if (!open) {
          es.close();
          ctl.failed();
        } else if (es.readyState === 2) ctl.dropped();
      };
      return function() {
        es.onopen = es.onmessage = es.onerror = null;
        es.close();
      };
    },
    poll: function(f, ctl) {
      return pollLoop(f, ctl, function(url, done) {
        var ac = new AbortController();
        var t = setTimeout(function() {
          ac.abort();
        }, (f.pollTimeout + 15) * 1e3);
        fetch(url, { signal: ac.signal, cache: "no-store" }).then(function(r) {
          return r.json().then(function(v) {
            return [r.status, v];
          });
        }).then(
          function(sv) {
            clearTimeout(t);
            done(sv[0], sv[1]);
          },
          function() {
            clearTimeout(t);
            done(0, null);
          }
        );
        return function() {
          clearTimeout(t);
          ac.abort();
        };
      });
    },
    // jsonp: a browser runs no script answered with an error status, so an
    // error answer looks like a network failure here.
    jsonp: function(f, ctl) {
      return pollLoop(f, ctl, function(url, done) {
        var name = "__halley_jsonp_" + ++jsonpSeq;
        var s = document.createElement("script");
        var finished = false;
        var finish = function(status, v) {
          if (finished) return;
          finished = true;
          clearTimeout(t);
          delete window[name];
          if (s.parentNode) s.parentNode.removeChild(s);
          done(status, v);
        };
        var t = setTimeout(function() {
          finish(0, null);
        }, (f.pollTimeout + 15) * 1e3);
        window[name] = function(v) {
          finish(v && v.status ? v.status : 200, v);
        };
        s.onerror = function() {
          finish(0, null);
        };
        s.src = url + "&callback=" + name;
        var insert = function() {
          if (!finished) document.head.appendChild(s);
        };
        if (document.readyState === "complete") insert();
        else window.addEventListener("load", insert);
        return function() {
          finished = true;
          clearTimeout(t);
          window[name] = function() {
          };
          if (s.parentNode) s.parentNode.removeChild(s);
        };
      });
    }
  };
  function pollLoop(f, ctl, request) {
    var open = false, dead = false, cancel = null, wait = null;
    function next() {
      if (dead) return;
      cancel = request(f.a.url("poll") + "&timeout=" + (open ? f.pollTimeout : 0), function(status, v) {
        cancel = null;
        if (dead) return;
        if (status === 0 || !v) {
          if (!open) ctl.failed();
          else ctl.dropped();
          return;
        }
        if (v.code !== "ok") {
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
    return function() {
      dead = true;
      clearTimeout(wait);
      if (cancel) cancel();
    };
  }

  // src/ezcomet.js
  var COOKIE_PREFIX = "ezcomet_tick_";
  var COOKIE_MAX_AGE = 7 * 24 * 3600;
  var RECENT_TICKS = 512;
  var subscriptions = [];
  function readCookie(name) {
    var parts = document.cookie ? document.cookie.split("; ") : [];
    for (var i = 0; i < parts.length; i++) {
      var eq = parts[i].indexOf("=");
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
    document.cookie = name + "=" + encodeURIComponent(value) + "; path=/; max-age=" + COOKIE_MAX_AGE + "; SameSite=Lax";
  }
  function Subscription(o) {
    if (!o || !o.user_name || !o.channel) throw new Error("ezcomet.subscribe: user_name and channel are required");
    if (typeof o.callback !== "function") throw new Error("ezcomet.subscribe: callback must be a function");
    this.user_name = String(o.user_name);
    this.channel = String(o.channel);
    this.qname = this.user_name + "-" + this.channel;
    this.callback = o.callback;
    this.msgType = o.msg_type || "string";
    this.autoTick = o.auto_tick !== false;
    this.cookie = COOKIE_PREFIX + this.qname;
    this.onGap = o.onGap;
    this.onError = o.onError;
    this.origin = (o.url || scriptOrigin).replace(/\/+$/, "");
    var saved = this.autoTick ? readCookie(this.cookie) : null;
    this.tick = saved != null ? saved : o.tick == null ? null : String(o.tick);
    this.recent = [];
    this.feed = new Feed(this, o);
  }
  Subscription.prototype.url = function(kind) {
    var path = kind === "websocket" ? "/read/ws" : kind === "sse" ? "/read/sse" : "/read";
    var u = this.origin + path + "?qname=" + encodeURIComponent(this.qname);
    if (this.tick != null) u += "&tick=" + encodeURIComponent(this.tick);
    return u;
  };
  Subscription.prototype.deliver = function(tick, msg) {
    if (this.recent.indexOf(tick) >= 0) return;
    this.recent.push(tick);
    if (this.recent.length > RECENT_TICKS) this.recent.shift();
    this.tick = tick;
    if (this.autoTick) writeCookie(this.cookie, tick);
    var arg = msg;
    if (this.msgType === "raw") arg = [tick, msg];
    else if (this.msgType === "json") {
      try {
        arg = JSON.parse(msg);
      } catch (e) {
        if (this.onError) callSafely(this.onError, [{ status: 0, msg: "message is not JSON", tick, data: msg }]);
        return;
      }
    }
    callSafely(this.callback, [arg]);
  };
  Subscription.prototype.gap = function() {
    if (this.onGap) callSafely(this.onGap, [{ channel: this.channel, tick: this.tick }]);
  };
  Subscription.prototype.frame = function(v) {
    if (Array.isArray(v)) this.deliver(String(v[0]), String(v[1]));
    else if (v && v.gap) this.gap();
  };
  Subscription.prototype.event = function(type, data, lastEventId) {
    if (type === "gap") this.gap();
    else this.deliver(lastEventId, data);
  };
  Subscription.prototype.answer = function(v) {
    if (v.gap) this.gap();
    var m = v.messages || [];
    for (var i = 0; i < m.length; i++) this.deliver(String(m[i][0]), String(m[i][1]));
  };
  Subscription.prototype.unsubscribe = function() {
    this.feed.stop();
    var i = subscriptions.indexOf(this);
    if (i >= 0) subscriptions.splice(i, 1);
  };
  Subscription.prototype.stop = Subscription.prototype.unsubscribe;
  Subscription.prototype.transport = function() {
    return this.feed.transport;
  };
  var ezcomet = {
    subscribe: function(o) {
      var s = new Subscription(o);
      subscriptions.push(s);
      s.feed.start();
      return s;
    },
    // unsubscribe ends a subscription given itself, or every subscription to
    // {user_name, channel}, or all of them when called without an argument.
    unsubscribe: function(which) {
      subscriptions.slice().forEach(function(s) {
        if (!which || which === s || which.channel === s.channel && (!which.user_name || String(which.user_name) === s.user_name))
          s.unsubscribe();
      });
    }
  };
  window.ezcomet = ezcomet;
})();

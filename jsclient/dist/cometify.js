/* cometify.js for Halley, built from jsclient/src by esbuild 0.28.2. */
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

  // src/cometify.js
  var IDENTIFIER = /^[a-zA-Z][a-zA-Z0-9_]{0,59}$/;
  function Listener(o) {
    if (!o || o.apiKey == null || o.apiKey === "") throw new Error("Cometify.init: apiKey is required");
    var ids = o.identifiers;
    this.names = [];
    this.since = null;
    if (typeof ids === "string") this.names = [ids];
    else if (Array.isArray(ids)) this.names = ids.map(String);
    else if (ids && typeof ids === "object") {
      this.since = {};
      for (var k in ids) {
        if (!Object.prototype.hasOwnProperty.call(ids, k)) continue;
        this.names.push(k);
        this.since[k.toLowerCase()] = Math.max(0, parseInt(ids[k], 10) || 0);
      }
    }
    if (!this.names.length) throw new Error("Cometify.init: identifiers are required");
    this.byLower = {};
    for (var i = 0; i < this.names.length; i++) {
      if (!IDENTIFIER.test(this.names[i])) throw new Error("Cometify.init: bad identifier " + this.names[i]);
      this.byLower[this.names[i].toLowerCase()] = this.names[i];
    }
    this.apiKey = String(o.apiKey);
    this.secureKey = o.secureKey ? String(o.secureKey) : "";
    this.callback = o.callback;
    this.onGap = o.onGap;
    this.origin = (o.url || scriptOrigin).replace(/\/+$/, "");
    this.feed = new Feed(this, o);
  }
  Listener.prototype.list = function() {
    var since = this.since;
    return this.names.map(function(n) {
      return since ? n + ":" + (since[n.toLowerCase()] || 0) : n;
    }).join(",");
  };
  Listener.prototype.url = function(kind) {
    var path = kind === "websocket" ? "/listen" : kind === "sse" ? "/sse" : "/poll";
    var u = this.origin + "/" + encodeURIComponent(this.apiKey) + path + "?identifiers=" + encodeURIComponent(this.list());
    if (this.secureKey) u += "&secureKey=" + encodeURIComponent(this.secureKey);
    return u;
  };
  Listener.prototype.advance = function(list) {
    if (typeof list !== "string" || !list) return;
    var since = this.since || {};
    var parts = list.split(",");
    for (var i = 0; i < parts.length; i++) {
      var c = parts[i].lastIndexOf(":");
      if (c < 0) continue;
      var name = parts[i].slice(0, c).toLowerCase();
      var id = parseInt(parts[i].slice(c + 1), 10);
      if (!(name in this.byLower) || !(id >= 0)) continue;
      if (!(since[name] >= id)) since[name] = id;
    }
    this.since = since;
  };
  Listener.prototype.push = function(p) {
    var lower = String(p.identifier).toLowerCase();
    var name = this.byLower[lower];
    if (name === void 0) return;
    if (this.since && this.since[lower] >= p.id) return;
    if (!this.since) this.since = {};
    this.since[lower] = p.id;
    var cb = this.callback;
    if (typeof cb === "string") {
      var path = cb.split(".");
      cb = window;
      for (var i = 0; i < path.length && cb; i++) cb = cb[path[i]];
    }
    if (typeof cb === "function") callSafely(cb, [p.data, p.id, name]);
  };
  Listener.prototype.gap = function(identifier) {
    var name = this.byLower[String(identifier).toLowerCase()];
    if (this.onGap && name !== void 0) callSafely(this.onGap, [name]);
  };
  Listener.prototype.frame = function(v) {
    if (!v || typeof v !== "object") return;
    if ("data" in v) this.push(v);
    else if (v.gap) this.gap(v.identifier);
    else if ("since" in v) this.advance(v.since);
  };
  Listener.prototype.event = function(type, data, lastEventId) {
    var v;
    try {
      v = JSON.parse(data);
    } catch (e) {
      return;
    }
    if (type === "gap") this.gap(v.identifier);
    else this.push(v);
    this.advance(lastEventId);
  };
  Listener.prototype.answer = function(v) {
    if (v.gap) {
      var g = v.gap_identifiers || [];
      for (var i = 0; i < g.length; i++) this.gap(g[i]);
    }
    var p = v.pushes || [];
    for (var j = 0; j < p.length; j++) this.push(p[j]);
    this.advance(v.since);
  };
  Listener.prototype.beforeSSE = function(done) {
    if (this.since || typeof fetch !== "function") {
      done(true);
      return;
    }
    var self = this;
    fetch(this.url("poll") + "&timeout=0", { cache: "no-store" }).then(function(r) {
      return r.json();
    }).then(
      function(v) {
        if (v.code === "ok") self.answer(v);
        done(v.code === "ok");
      },
      function() {
        done(false);
      }
    );
  };
  Listener.prototype.start = function() {
    this.feed.start();
    return this;
  };
  Listener.prototype.stop = function() {
    this.feed.stop();
    return this;
  };
  Listener.prototype.transport = function() {
    return this.feed.transport;
  };
  window.Cometify = {
    init: function(o) {
      return new Listener(o);
    }
  };
})();

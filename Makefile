# Halley. `make run` serves on the embedded default; `make test` installs
# what it needs and runs every check. See README.md.

GO        ?= go
BIN       := bin
HALLEY    := $(BIN)/halley
STATICCHECK_VERSION := v0.8.2

.PHONY: run build test lint unit conform crash fuzz bench bench-cluster soak clean tools js browser deb

build:
	$(GO) build -o $(HALLEY) ./cmd/halley

run: build
	$(HALLEY) serve --data ./data

tools:
	@mkdir -p $(BIN)
	@test -x $(BIN)/staticcheck || GOBIN=$(CURDIR)/$(BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

# test: gofmt, vet, staticcheck, unit tests with -race (the crash test
# among them), the conformance suite against a freshly built server, then
# the browser tests (installs chromium and the pinned npm packages if missing).
test:
	bash scripts/test.sh

lint: tools
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@missing=$$(grep -rhoE '^func Fuzz[A-Za-z0-9_]+' --include='*_test.go' . | sed 's/^func //' | sort -u | \
		while read -r f; do echo " $(FUZZ_TARGETS) " | grep -q ":$$f " || echo "$$f"; done); \
		if [ -n "$$missing" ]; then echo "fuzz targets missing from FUZZ_TARGETS in the Makefile: $$missing"; exit 1; fi
	$(GO) vet ./...
	$(BIN)/staticcheck ./...

unit:
	$(GO) test -race -shuffle=on ./...

conform: build
	bash scripts/conform.sh

# js: rebuild jsclient/dist from jsclient/src with the pinned esbuild
# (commit the result: the binary embeds it; make test checks it is current).
js:
	cd jsclient && npm ci --no-audit --no-fund --loglevel=error && node build.mjs

# browser: the browser tests alone (installs chromium and npm packages if
# missing). ARGS filters tests by name, e.g. make browser ARGS=fallback.
browser:
	bash browsertest/run.sh $(ARGS)

# fuzz each parser for FUZZTIME (default 30s each); corpora stay in
# testdata/. FUZZ_TARGETS lists package:target pairs; `make fuzz
# FUZZ_TARGETS=engine:FuzzClientIP` runs one.
FUZZTIME ?= 30s
FUZZ_TARGETS ?= engine:FuzzParseRequest engine:FuzzWSFrames engine:FuzzParseFrameHeader engine:FuzzClientIP \
	protocol:FuzzFormParse protocol:FuzzParseList protocol:FuzzLastEventID protocol:FuzzAppendJSONString \
	protocol:FuzzPushAuth protocol:FuzzHMACSigner protocol:FuzzDemoLoopbackHost bench:FuzzCentrifugeNext cluster:FuzzDecode \
	promtext:FuzzAppend engine:FuzzTrustedProxyFlag cmd/halley:FuzzConfigFile cmd/halley:FuzzParseClusterArgs bench:FuzzKernelText bench:FuzzRespStream persist:FuzzParseGenTick
fuzz:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t#*:}; \
		echo "== $$pkg $$name ($(FUZZTIME))"; \
		$(GO) test ./$$pkg -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) || exit 1; \
	done

# bench: Halley (one event loop) against Nchan (one nginx worker) and the
# Centrifuge peer (GOMAXPROCS=1), each restarted per case, medians of 3
# fresh runs; the floor case first, so every fan-out is stated against it.
# Tables, JSON lines and plots land in bench/results/ (about 50 minutes).
# BENCH_CASES picks cases.
BENCH_CASES ?= floor,idle-ws,idle-longpoll,idle-cf-ws,idle-cf-longpoll,write-synced,write-cf-synced,write-nosync,publish-256,fanout-10k,fanout-1k,cf-fanout-10k
bench: build
	@test -f /usr/lib/nginx/modules/ngx_nchan_module.so || (apt-get update && apt-get install -y nginx-light libnginx-mod-nchan)
	$(HALLEY) bench run --halley-cmd "$(CURDIR)/$(HALLEY) serve --data {tmp} --listen 127.0.0.1:18080 --loops 1" \
		--nchan --nchan-dir ../shared/peers/nchan \
		--centrifuge --centrifuge-dir ../shared/peers/centrifuge \
		--cases $(BENCH_CASES) --out bench/results

# deb: dist/halley_<version>_<arch>.deb (deploy/nfpm.yaml: the binary,
# the systemd unit, /etc/halley/halley.toml, the halley user). nfpm runs
# through `go run pkg@version`, so it stays out of go.mod. The version is
# the latest v* tag, else 0.0.0+git<commit date>.<commit>.
NFPM_VERSION ?= v2.48.0
DEB_VERSION  ?= $(shell v=$$(git describe --tags --match 'v[0-9]*' 2>/dev/null) && echo $${v\#v} || \
	git log -1 --date=format:%Y%m%d --format='0.0.0+git%cd.%h' 2>/dev/null || echo 0.0.0)
.PHONY: deb
deb: build
	@mkdir -p dist
	VERSION='$(DEB_VERSION)' ARCH=$$($(GO) env GOARCH) \
		$(GO) run github.com/goreleaser/nfpm/v2/cmd/nfpm@$(NFPM_VERSION) package \
		--config deploy/nfpm.yaml --packager deb --target dist/

# bench-cluster: PERF P7's first bar: idle connections across 13 nodes of
# `halley cluster` (half WebSocket, half long-poll, both APIs) from client
# processes over 127.0.0.0/8, one push to all of them, and the fan-out with
# subscribers spread over the nodes, beside one node (about 15 minutes).
bench-cluster: build
	$(HALLEY) bench run --cases idle-cluster,fanout-cluster --nodes 13 --cluster-counts 20000,200000 --counts 2000,18000 \
		--open-timeout 10m --push-wait 30s --run-timeout 20m \
		--halley-cmd "$(CURDIR)/$(HALLEY) serve --data {tmp} --listen 127.0.0.1:18080 --loops 1" \
		--cluster-cmd "$(CURDIR)/$(HALLEY) cluster --nodes {nodes} --loops 1 --data {tmp} --listen 127.0.0.1:18080" \
		--out bench/results

clean:
	rm -rf $(BIN) data dist jsclient/node_modules browsertest/node_modules

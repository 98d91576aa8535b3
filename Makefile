# callwarden Makefile. `make test` is the test command CI runs (see README).
GO ?= go
PKGS_UNIT := $(shell $(GO) list ./... | grep -v /integration)

.PHONY: all build image test unit integration lab vet bench bench-intercept bench-pbx bench-http fuzz links demo clean

all: build

build:
	$(GO) build -o bin/callwarden ./cmd/callwarden

vet:
	$(GO) vet ./...

## unit: every package but the integration suites, with the race detector.
unit: vet
	$(GO) test -race -count=1 $(PKGS_UNIT)

## image: callwarden's own image, callwarden:<git describe>, built offline (cached;
## deploy/image/build.sh; registry users build deploy/image/Dockerfile instead).
image:
	GO=$(GO) bash deploy/image/build.sh

## lab: build the Asterisk and Redis lab images offline (cached), load the FreeSWITCH
## image from ../shared/images (sha256-checked; CALLWARDEN_FREESWITCH_IMAGE_TAR overrides)
## and build callwarden's image (the image suite runs it).
lab:
	bash deploy/lab/build.sh
	bash deploy/lab/load-freeswitch.sh
	GO=$(GO) bash deploy/image/build.sh

## integration: the suites against real containers (needs `make lab`).
integration: lab
	TESTCONTAINERS_RYUK_DISABLED=true $(GO) test -race -count=1 -v ./integration/...

## fuzz: every Fuzz target for a bounded count of inputs (FUZZ_COUNT, default 3000).
fuzz:
	GO=$(GO) bash .ci/fuzz

## links: every relative link and anchor of README.md, docs/ and deploy/**/README.md resolves.
links:
	bash .ci/links

## test: unit + fuzz + integration; what CI runs.
test: unit fuzz integration

## demo: the scripted demo against the lab (docs/demo.md); leaves no container behind.
## PBX=freeswitch plays the same story on the lab's FreeSWITCH.
PBX ?= asterisk
demo: lab build
	$(GO) build -o bin/cwdemo ./cmd/cwdemo
	./bin/cwdemo --pbx $(PBX)

bench:
	$(GO) test -run='^$$' -bench=. -benchmem ./enforce/

## bench-intercept: FreeSWITCH socket -> eavesdrop running, p50/p99 by FreeSWITCH's own
## event timestamps, idle and with 50 live calls (needs `make lab`; docs/performance.md).
bench-intercept:
	TESTCONTAINERS_RYUK_DISABLED=true $(GO) test -count=1 -run '^$$' -bench FreeSWITCHIntercept -benchtime 50x ./integration/

## bench-pbx: the intercept latency under PBX load (issue 16), by the PBXs' own event
## timestamps: Asterisk Stasis -> snoop bridged with 0, 500 and 1,000 unrelated live calls,
## FreeSWITCH socket -> eavesdrop with 0, 100 and 200 (what the lab's FreeSWITCH holds on 2
## cores), one supervisor at a time and ten at once, and the watchdog's bypass -> hang-up
## under the same load (needs `make lab`; at most 100 samples a case, a few minutes in all;
## docs/performance.md). CALLWARDEN_BENCH_ARI_TRACE=<file> appends where the Asterisk
## sessions' time went (each ARI call callwarden makes, CPU per round) to <file>.
bench-pbx:
	TESTCONTAINERS_RYUK_DISABLED=true $(GO) test -count=1 -run '^$$' -bench 'AsteriskInterceptUnderLoad|FreeSWITCHInterceptUnderLoad' -benchtime 20x -timeout 30m ./integration/

## bench-http: GET /v1/check over loopback against `callwarden serve` with 10,000 users
## (cmd/cwload; docs/performance.md, "HTTP check path"). File mode by default;
## CWLOAD_FLAGS='-redis-docker callwarden-lab/redis:7' (or -redis-addr ADDR) for Redis mode.
CWLOAD_FLAGS ?=
bench-http: build
	$(GO) run ./cmd/cwload -bin bin/callwarden $(CWLOAD_FLAGS)

clean:
	rm -rf bin

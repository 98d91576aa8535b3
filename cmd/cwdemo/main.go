// Command cwdemo plays callwarden's scripted demo, what `make demo` runs: it
// starts the lab (a real Asterisk 22 and Redis 7 in containers, see
// integration/lab), applies the example profiles to Redis, starts the real
// `callwarden serve` against them, and then places calls through ARI: a
// customer in the sales queue answered by an agent, supervisors dialing the
// feature codes and pressing keys, teachers playing a recording back, and a
// rogue ChanSpy that nobody allowed. Every step prints what Asterisk shows
// (ARI channels, bridges, recordings, playbacks and hang-up causes, never
// callwarden's own account) and the audit record callwarden wrote to Redis,
// then PASS or FAIL. Everything is torn down at the end, also on Ctrl-C.
//
// It is a demo and a smoke test of the whole chain, not a library: it may
// import every callwarden package. main turns signals into a context and
// the result of run into an exit status (0 every step passed, 1 a step
// failed or the lab could not start, 2 bad flags, 130 interrupted).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

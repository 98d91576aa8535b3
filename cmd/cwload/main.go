// Command cwload measures callwarden's HTTP check path: it starts a
// `callwarden serve` on a loopback port with a generated profiles file of
// -users users (file mode, or Redis mode with -redis-addr or -redis-docker),
// sends GET /v1/check over -conns keep-alive connections for -duration
// after a -warmup, and prints the rate, the latency percentiles, the
// daemon's CPU per check (from /proc/<pid>/stat) and the audit counters of
// its /metrics. In Redis mode it then stops the daemon (which flushes its
// audit queue) and runs `callwarden audit verify`.
//
// It targets loopback only and stops by itself: after -duration, or after
// -requests checks when that is set. See docs/performance.md, "HTTP check
// path", and `make bench-http`.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "cwload:", err)
		os.Exit(1)
	}
}

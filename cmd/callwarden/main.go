// Command callwarden decides whether a person may listen to, whisper to,
// barge into, record or play back a call. It serves the decision over HTTP
// (`callwarden serve`, with the admin API), explains decisions offline
// (`callwarden check`), validates profiles files (`callwarden profiles
// validate`) and administers the Redis store (`profiles apply|export`,
// `users assign|revoke`, `audit tail|verify`).
//
// main only turns signals into a context and a reload channel and the
// result of run into an exit status; everything else lives in run and is
// tested in-process.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// version is the release version, set at build time with
// -ldflags "-X main.version=v1.2.3"; when empty the module build info is
// used instead.
var version string

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv, hup)
	signal.Stop(hup)
	stop()
	os.Exit(code)
}

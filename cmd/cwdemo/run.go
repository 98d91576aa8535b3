package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/callwarden/callwarden/integration/lab"
)

// Exit statuses.
const (
	exitOK          = 0
	exitFailure     = 1
	exitBadInput    = 2
	exitInterrupted = 130
)

// options are cwdemo's flags.
type options struct {
	// callwarden is the binary to run (built by `make build`).
	callwarden string
	// profiles are the profiles files applied to Redis before serving.
	profiles []string
	// wait bounds each wait for an outcome in the PBX or the audit trail.
	wait time.Duration
	// pbx is the PBX the story plays on: asterisk or freeswitch.
	pbx string
}

// The PBXs the demo plays on.
const (
	pbxAsterisk   = "asterisk"
	pbxFreeSWITCH = "freeswitch"
)

// pbxName is the PBX of the run, as the demo's first line names it.
func (o options) pbxName() string {
	if o.pbx == pbxFreeSWITCH {
		return "FreeSWITCH " + lab.FreeSWITCHVersion
	}
	return "Asterisk 22"
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// run parses the flags and plays the demo; it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("cwdemo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: cwdemo [--pbx asterisk|freeswitch] [--callwarden PATH] [-f PROFILES...] [--wait DURATION]")
		fmt.Fprintln(stderr, "Plays callwarden's scripted demo against the lab (needs Docker and `make lab`).")
		fs.PrintDefaults()
	}
	var o options
	var files stringList
	fs.StringVar(&o.callwarden, "callwarden", "bin/callwarden", "callwarden `BINARY` to run (`make build` makes it)")
	fs.Var(&files, "f", "profiles `FILE` applied to Redis (repeatable; default deploy/examples/profiles.yaml and deploy/demo/teachers.yaml)")
	fs.DurationVar(&o.wait, "wait", 10*time.Second, "how long each step waits for its outcome")
	fs.StringVar(&o.pbx, "pbx", pbxAsterisk, "the `PBX` the story plays on: asterisk or freeswitch")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitBadInput
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "cwdemo: unexpected argument %q\n", fs.Arg(0))
		return exitBadInput
	}
	if o.pbx != pbxAsterisk && o.pbx != pbxFreeSWITCH {
		fmt.Fprintf(stderr, "cwdemo: --pbx %q: want asterisk or freeswitch\n", o.pbx)
		return exitBadInput
	}
	if o.wait <= 0 {
		fmt.Fprintln(stderr, "cwdemo: --wait must be positive")
		return exitBadInput
	}
	o.profiles = files
	if len(o.profiles) == 0 {
		o.profiles = []string{"deploy/examples/profiles.yaml", "deploy/demo/teachers.yaml"}
	}
	for _, p := range append([]string{o.callwarden}, o.profiles...) {
		if _, err := os.Stat(p); err != nil {
			fmt.Fprintf(stderr, "cwdemo: %v (run it from the repository root, after `make build`)\n", err)
			return exitBadInput
		}
	}
	return newDemo(o, stdout).run(ctx)
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/callwarden/callwarden/config"
	"github.com/callwarden/callwarden/enforce"
)

// The exit statuses, like `kubectl auth can-i`: 0 allow (or success),
// 1 deny (or a runtime failure of serve), 2 bad input.
const (
	exitOK       = 0
	exitDeny     = 1
	exitFailure  = 1
	exitBadInput = 2
)

// env is what a command may use of the process: its streams and its
// environment, injected so that commands run in tests as they do for real.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	// reload delivers SIGHUP: serve reloads its profiles files on it.
	reload <-chan os.Signal
	// open opens the shared store (Redis; tests inject memory).
	open openStoreFunc
	// now is the clock of audit records written by the CLI.
	now func() time.Time
	// pollInterval is how often `audit tail --follow` polls.
	pollInterval time.Duration
}

// run executes the command line args and returns the exit status. It never
// exits the process itself.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer,
	getenv func(string) string, reload <-chan os.Signal) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv, reload: reload,
		open: openRedis, now: time.Now, pollInterval: time.Second}
	return e.run(ctx, args)
}

// run executes args with the process e describes: the command of the
// table (commands) its first words name.
func (e *env) run(ctx context.Context, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, usage())
		return exitBadInput
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(e.stdout, usage())
		return exitOK
	}
	if c, ok := lookup(args[0], ""); ok {
		return c.run(e, ctx, args[1:])
	}
	subs := subcommands(args[0])
	if len(subs) == 0 {
		fmt.Fprintf(e.stderr, "callwarden: unknown command %q\n%s", args[0], usage())
		return exitBadInput
	}
	want := "want: " + strings.Join(subs, ", ")
	if len(args) == 1 {
		return e.badInput("%s: missing subcommand (%s)", args[0], want)
	}
	if c, ok := lookup(args[0], args[1]); ok {
		return c.run(e, ctx, args[2:])
	}
	return e.badInput("%s: unknown subcommand %q (%s)", args[0], args[1], want)
}

// newFlagSet returns a flag set that reports to stderr instead of exiting.
func (e *env) newFlagSet(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: callwarden %s\n\nflags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args into fs. It returns -1 when the command should go
// on, or the exit status when it should stop: 0 after -h, 2 after a bad
// flag (the flag package has printed the problem and the usage) or a
// stray argument.
func (e *env) parseFlags(fs *flag.FlagSet, args []string) int {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitBadInput
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "callwarden %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		fs.Usage()
		return exitBadInput
	}
	return -1
}

// stringList is a repeatable string flag: -f a.yaml -f b.yaml.
type stringList []string

// String renders the list for the flag package's defaults.
func (l *stringList) String() string { return strings.Join(*l, ",") }

// Set appends one value.
func (l *stringList) Set(v string) error {
	*l = append(*l, v)
	return nil
}

// fileFlags registers -f and --file, both feeding files; stdin says
// whether "-" (standard input) is accepted.
func fileFlags(fs *flag.FlagSet, files *stringList, stdin bool) {
	help := "profiles `FILE` (repeatable)"
	if stdin {
		help = "profiles `FILE` (repeatable; \"-\" reads standard input)"
	}
	fs.Var(files, "f", help)
	fs.Var(files, "file", "same as -f `FILE`")
}

// badInput prints a one-line reason and returns exitBadInput.
func (e *env) badInput(format string, args ...any) int {
	fmt.Fprintf(e.stderr, "callwarden: "+format+"\n", args...)
	return exitBadInput
}

// failure prints a failure of the command to stderr and returns exit 1.
func (e *env) failure(format string, args ...any) int {
	fmt.Fprintf(e.stderr, "callwarden: "+format+"\n", args...)
	return exitFailure
}

// loadSnapshot reads the profiles files and compiles them into a snapshot,
// returning the policy too for its counts. "-" alone reads the profiles
// from stdin.
func (e *env) loadSnapshot(files []string) (*enforce.Snapshot, enforce.Policy, error) {
	switch {
	case len(files) == 1 && files[0] == "-":
		data, err := io.ReadAll(e.stdin)
		if err != nil {
			return nil, enforce.Policy{}, fmt.Errorf("read standard input: %w", err)
		}
		p, err := config.ParseProfiles("<stdin>", data)
		if err != nil {
			return nil, p, err
		}
		s, err := enforce.NewSnapshot(p, 1)
		return s, p, err
	case containsDash(files):
		return nil, enforce.Policy{}, errors.New(`-f -: standard input can only be the only profiles file`)
	}
	return loadFiles(files, 1)
}

// loadFiles reads and compiles the profiles files into a snapshot of
// generation gen.
func loadFiles(files []string, gen uint64) (*enforce.Snapshot, enforce.Policy, error) {
	p, err := config.LoadProfiles(files...)
	if err != nil {
		return nil, p, err
	}
	s, err := enforce.NewSnapshot(p, gen)
	if err != nil {
		return nil, p, err
	}
	return s, p, nil
}

func containsDash(files []string) bool {
	for _, f := range files {
		if f == "-" {
			return true
		}
	}
	return false
}

// errorLines splits a profiles error into its problems, one per line,
// each "file:line: field: message" when the parser located it.
func errorLines(err error) []string {
	var fe config.Errors
	if errors.As(err, &fe) && len(fe) > 0 {
		lines := make([]string, len(fe))
		for i, e := range fe {
			lines[i] = e.Error()
		}
		return lines
	}
	var lines []string
	for _, l := range strings.Split(err.Error(), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		lines = []string{"unknown error"}
	}
	return lines
}

// oneLine renders a profiles error as one line: the first problem, and how
// many more there are.
func oneLine(err error) string {
	lines := errorLines(err)
	if len(lines) == 1 {
		return lines[0]
	}
	return fmt.Sprintf(`%s (and %d more; run "callwarden profiles validate")`, lines[0], len(lines)-1)
}

func (e *env) version(_ context.Context, args []string) int {
	fs := e.newFlagSet("version", "version")
	if code := e.parseFlags(fs, args); code >= 0 {
		return code
	}
	fmt.Fprintf(e.stdout, "callwarden %s (%s)\n", versionString(), runtime.Version())
	return exitOK
}

// versionString is the -ldflags version, or what the build info knows: the
// module version, or the VCS revision for a development build.
func versionString() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if (v == "" || v == "(devel)") && rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		return "devel-" + rev + dirty
	}
	if v == "" {
		return "(devel)"
	}
	return v
}

package main

import "fmt"

// profiles runs the `profiles` subcommands. Only validate exists here:
// apply and export need the store.
func (e *env) profiles(args []string) int {
	if len(args) == 0 {
		return e.badInput("profiles: missing subcommand (want: validate)")
	}
	switch args[0] {
	case "validate":
		return e.validate(args[1:])
	}
	return e.badInput("profiles: unknown subcommand %q (want: validate)", args[0])
}

// validate loads the profiles files as serve and check would, and prints
// either a one-line summary or every problem, one per line, exit 2.
func (e *env) validate(args []string) int {
	fs := e.newFlagSet("profiles validate", "profiles validate -f FILE [-f FILE...]")
	var files stringList
	fileFlags(fs, &files, true)
	if code := e.parseFlags(fs, args); code >= 0 {
		return code
	}
	if len(files) == 0 {
		return e.badInput("profiles validate: -f FILE is required")
	}
	_, p, err := e.loadSnapshot(files)
	if err != nil {
		for _, l := range errorLines(err) {
			fmt.Fprintln(e.stderr, l)
		}
		return exitBadInput
	}
	fmt.Fprintf(e.stdout, "ok: %d profiles, %d users\n", len(p.Profiles), len(p.Users))
	return exitOK
}

package main

import (
	"context"
	"fmt"
	"strings"
)

// command is one command of the CLI: its name, one word ("check") or a
// group and a subcommand ("audit verify"), what the usage text says of
// it, and the function that runs it with the arguments after its name.
type command struct {
	name string
	help string
	run  func(e *env, ctx context.Context, args []string) int
}

// commands is the command table: every command, in the order of the usage
// text; a group's subcommands are listed, and offered, in this order. It
// is read-only.
var commands = [...]command{
	{name: "check", help: "decide one request offline from profiles files\n(exit 0 allow, 1 deny, 2 bad input)", run: (*env).check},
	{name: "who-can", help: "list every user allowed an action on an agent, queue or\nrecording, with the profile and grant that allow it", run: (*env).whoCan},
	{name: "rights", help: "print a user's effective rights: per action, the grants,\nwhat they reach, their windows and the protected exceptions", run: (*env).rights},
	{name: "profiles init", help: "start a profiles file from a seed template\n(--template NAME [-o FILE] [--force])", run: (*env).initProfiles},
	{name: "profiles import-dialplan", help: "propose a profiles file from an Asterisk dialplan's\nChanSpy/ExtenSpy lines, and report what it could not translate", run: (*env).importDialplan},
	{name: "profiles validate", help: "check profiles files and report every problem", run: (*env).validate},
	{name: "profiles apply", help: "apply profiles files to Redis, atomically (--dry-run\nprints the diff and writes nothing; --impact[=7d] replays\nthe audited decisions and prints those that would change)", run: (*env).apply},
	{name: "profiles export", help: "print the policy stored in Redis as a profiles file", run: (*env).export},
	{name: "users assign", help: "give a user a profile (and queues) in Redis\n(--dry-run [--impact[=7d]] as for profiles apply)", run: (*env).assign},
	{name: "users revoke", help: "take a user's profile away in Redis\n(--dry-run [--impact[=7d]] as for profiles apply)", run: (*env).revoke},
	{name: "audit tail", help: "print audit records as JSON lines (--follow)", run: (*env).tail},
	{name: "audit verify", help: "check the audit trail's hash chain and head (--anchor\nFILE: and that it still holds the anchored record)", run: (*env).verify},
	{name: "audit anchor", help: "print a (--key-file: HMAC-signed) anchor of the\naudit trail's end, to keep outside Redis", run: (*env).anchor},
	{name: "sessions", help: "list live monitor sessions and recordings in Redis as JSON\nlines (--follow: then each change); `sessions end ID` ends one", run: (*env).sessions},
	{name: "recordings ls", help: "list the recordings you may play back, through the admin\nAPI, as JSON lines (--agent, --queue, --from, --to, --all)", run: (*env).recordingsList},
	{name: "recordings show", help: "print one recording's metadata (admin API)", run: (*env).recordingsShow},
	{name: "recordings get", help: "write a recording's audio (-o FILE; --download exports it;\n--range bytes=A-B)", run: (*env).recordingsGet},
	{name: "recordings rm", help: "delete a recording from the PBX and the catalogue", run: (*env).recordingsRemove},
	{name: "recordings access", help: "print who read, played, exported or deleted a recording", run: (*env).recordingsAccess},
	{name: "token hash", help: "print the SHA-256 of an admin token read from stdin", run: (*env).tokenHash},
	{name: "token add", help: "store an admin token's hash in Redis (token on stdin)", run: (*env).tokenAdd},
	{name: "token revoke", help: "remove a user's token hashes from Redis", run: (*env).tokenRevoke},
	{name: "token list", help: "list the users holding tokens in Redis", run: (*env).tokenList},
	{name: "serve", help: "serve the check API, the admin API, /healthz, /readyz\nand /metrics", run: (*env).serve},
	{name: "version", help: "print the version", run: (*env).version},
}

// lookup finds the command named word (sub empty) or "word sub".
func lookup(word, sub string) (command, bool) {
	name := word
	if sub != "" {
		name += " " + sub
	}
	for _, c := range commands {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

// subcommands lists the subcommands of group, in table order; none when
// group is not a group.
func subcommands(group string) []string {
	var out []string
	for _, c := range commands {
		if g, sub, ok := strings.Cut(c.name, " "); ok && g == group {
			out = append(out, sub)
		}
	}
	return out
}

// usage is the usage text, built from the command table.
func usage() string {
	var b strings.Builder
	b.WriteString("usage: callwarden <command> [flags]\n\ncommands:\n")
	width := 0
	for _, c := range commands {
		width = max(width, len(c.name))
	}
	for _, c := range commands {
		for i, line := range strings.Split(c.help, "\n") {
			name := ""
			if i == 0 {
				name = c.name
			}
			fmt.Fprintf(&b, "  %-*s  %s\n", width, name, line)
		}
	}
	b.WriteString("\nRun \"callwarden <command> -h\" for the flags of a command.\n")
	return b.String()
}

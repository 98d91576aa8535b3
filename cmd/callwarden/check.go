package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/callwarden/callwarden/enforce"
)

// checkFlags maps the check parameters of enforce.ParseRequest to the
// flag names the CLI spells them with, so a parameter error names the flag
// the user typed.
// It is a read-only table.
var checkFlags = [...]struct{ param, flag, help string }{
	{enforce.ParamUser, "user", "requesting `USER` id (required)"},
	{enforce.ParamAction, "action", "`ACTION`, e.g. monitor.listen (required)"},
	{enforce.ParamQueue, "queue", "target `QUEUE`; repeatable for profile.assign (the queues handed out on)"},
	{enforce.ParamTeam, "team", "target `TEAM`"},
	{enforce.ParamAgent, "agent", "target `AGENT` (user id)"},
	{enforce.ParamSite, "site", "target `SITE`"},
	{enforce.ParamAssign, "assign", "`PROFILE` handed out, for profile.assign"},
	{enforce.ParamAt, "at", "decide at this `TIME` (RFC 3339; default now)"},
	{enforce.ParamRecordedAt, "recorded-at", "when the recording was made (`TIME`, RFC 3339)"},
}

func flagOf(param string) string {
	for _, c := range checkFlags {
		if c.param == param {
			return "--" + c.flag
		}
	}
	return param
}

// check decides one request from profiles files, like `kubectl auth
// can-i`: exit 0 allow, 1 deny, 2 bad input. The flags are mapped onto the
// HTTP API's parameters and parsed by the same parser, and the answer is the
// same CheckResponse, so the CLI explains exactly what GET /v1/check answers.
func (e *env) check(_ context.Context, args []string) int {
	fs := e.newFlagSet("check", "check -f FILE --user U --action A [--queue Q] [--team T] [--agent A] [--site S] [--assign PROFILE] [--at RFC3339] [--recorded-at RFC3339] [--output text|json]")
	var files, queues stringList
	fileFlags(fs, &files, true)
	vals := map[string]*string{}
	for _, c := range checkFlags {
		if c.param == enforce.ParamQueue {
			fs.Var(&queues, c.flag, c.help)
			continue
		}
		vals[c.param] = fs.String(c.flag, "", c.help)
	}
	output := fs.String("output", "text", "output `FORMAT`: text or json")
	if code := e.parseFlags(fs, args); code >= 0 {
		return code
	}
	if *output != "text" && *output != "json" {
		return e.badInput("--output: %q, want text or json", *output)
	}
	if len(files) == 0 {
		return e.badInput("check: -f FILE is required")
	}
	q := url.Values{}
	for param, v := range vals {
		if *v != "" {
			q.Set(param, *v)
		}
	}
	if len(queues) > 0 {
		q[enforce.ParamQueue] = queues
	}
	req, at, err := enforce.ParseRequest(q)
	if err != nil {
		var pe *enforce.ParamError
		if errors.As(err, &pe) {
			return e.badInput("%s: %v", flagOf(pe.Param), pe.Err)
		}
		return e.badInput("%v", err)
	}
	snap, _, err := e.loadSnapshot(files)
	if err != nil {
		return e.badInput("%s", oneLine(err))
	}
	if at.IsZero() {
		at = time.Now()
	}
	d := enforce.Decide(snap, &req, at)
	resp := enforce.NewAnswer(req, d)
	if *output == "json" {
		if err := json.NewEncoder(e.stdout).Encode(resp); err != nil {
			return e.failure("write: %v", err)
		}
	} else {
		fmt.Fprintln(e.stdout, resp.Explain())
	}
	if d.Allow {
		return exitOK
	}
	return exitDeny
}

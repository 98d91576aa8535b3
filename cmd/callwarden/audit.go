package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/callwarden/callwarden/enforce"
)

// followSkew is how far back `audit tail --follow` looks behind the newest
// record it printed: records carry their deciders' clocks, and a daemon
// whose clock lags may append a record dated slightly earlier.
const followSkew = 5 * time.Second

// tail prints the audit records matching the filters, oldest first, one
// JSON object per line; with --follow it then polls for new ones until ctx
// ends. The filters are parsed by the API's parser, so the CLI and GET
// /v1/audit accept the same values. Records are printed as stored (caller
// numbers masked per the requester's profile when they were written): the
// CLI holds the store's credentials and reads as an administrator.
func (e *env) tail(ctx context.Context, args []string) int {
	fs, sf := e.newStoreFlagSet("audit tail", "audit tail [--follow] [--user U] [--target T] [--action A] [--decision allow|deny] [--session ID] [--since RFC3339] [--until RFC3339] [--limit N] [--redis-addr ADDR] [--config FILE]")
	params := map[string]*string{}
	for _, p := range []struct{ name, help string }{
		{enforce.AuditParamUser, "only records of requester `USER`"},
		{enforce.AuditParamTarget, "only records about `TARGET`"},
		{enforce.AuditParamAction, "only records of `ACTION`"},
		{enforce.AuditParamDecision, "only `DECISION`s: allow or deny"},
		{enforce.AuditParamSession, "only records of the live monitor session `ID`"},
		{enforce.AuditParamSince, "only records at or after `TIME` (RFC 3339)"},
		{enforce.AuditParamUntil, "only records before `TIME` (RFC 3339)"},
		{enforce.AuditParamLimit, "print at most the `N` most recent records (default 100)"},
	} {
		params[p.name] = fs.String(p.name, "", p.help)
	}
	follow := fs.Bool("follow", false, "keep printing new records until interrupted")
	if code := e.parseFlags(fs, args); code >= 0 {
		return code
	}
	q := url.Values{}
	for name, v := range params {
		if *v != "" {
			q.Set(name, *v)
		}
	}
	f, err := enforce.ParseAuditFilter(q)
	if err != nil {
		var pe *enforce.ParamError
		if errors.As(err, &pe) {
			return e.badInput("--%s: %v", pe.Param, pe.Err)
		}
		return e.badInput("%v", err)
	}
	return e.withStore(ctx, sf, func(st store) int {

		t := tailer{out: e.stdout, seen: map[[sha256.Size]byte]time.Time{}}
		recs, err := st.ReadAudit(ctx, f)
		if err != nil {
			return e.failure("read audit: %v", err)
		}
		if err := t.print(recs); err != nil {
			return e.failure("write: %v", err)
		}
		if !*follow {
			return exitOK
		}
		return e.followStore(ctx, "read audit", func() (readErr, writeErr error) {
			next := f
			next.Limit = 0
			if since := t.newest.Add(-followSkew); !t.newest.IsZero() && since.After(next.Since) {
				next.Since = since
			}
			recs, err := st.ReadAudit(ctx, next)
			if err != nil {
				return err, nil
			}
			return nil, t.print(recs)
		})
	})
}

// followStore calls step every pollInterval until ctx ends (exit 0), for
// a --follow. A read error is transient for a follower: it is said on
// stderr (what names the read) and the next tick tries again; a write
// error ends the command.
func (e *env) followStore(ctx context.Context, what string, step func() (readErr, writeErr error)) int {
	tick := time.NewTicker(e.pollInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return exitOK
		case <-tick.C:
		}
		readErr, writeErr := step()
		switch {
		case writeErr != nil:
			return e.failure("write: %v", writeErr)
		case readErr != nil && ctx.Err() != nil:
			return exitOK
		case readErr != nil:
			fmt.Fprintf(e.stderr, "callwarden: %s: %v (retrying)\n", what, readErr)
		}
	}
}

// tailer prints records once each, remembering those within followSkew of
// the newest so a later poll that reads them again skips them.
type tailer struct {
	out    io.Writer
	newest time.Time
	seen   map[[sha256.Size]byte]time.Time
}

func (t *tailer) print(recs []enforce.AuditRecord) error {
	for _, r := range recs {
		line, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("encode audit record: %w", err)
		}
		key := sha256.Sum256(line)
		if _, dup := t.seen[key]; dup {
			continue
		}
		t.seen[key] = r.Time
		if r.Time.After(t.newest) {
			t.newest = r.Time
		}
		if _, err := fmt.Fprintf(t.out, "%s\n", line); err != nil {
			return err
		}
	}
	cut := t.newest.Add(-2 * followSkew)
	for k, at := range t.seen {
		if at.Before(cut) {
			delete(t.seen, k)
		}
	}
	return nil
}

// verify checks the audit trail's hash chain, that the head names its last
// record and, with --anchor, that it still holds the anchored record: exit
// 0 when intact, 1 with the first bad record's id (or what is missing) and
// why, 2 for bad input (an unreadable anchor, a signed anchor without its
// key).
func (e *env) verify(ctx context.Context, args []string) int {
	fs, sf := e.newStoreFlagSet("audit verify", "audit verify [--anchor FILE [--key-file FILE]] [--redis-addr ADDR] [--config FILE]")
	anchorFile := fs.String("anchor", "", "also check the anchor in `FILE` (written by `audit anchor`)")
	keyFile := fs.String("key-file", "", "HMAC key `FILE` the anchor was signed with")
	if code := e.parseFlags(fs, args); code >= 0 {
		return code
	}
	var opts []enforce.VerifyOption
	var anchor enforce.AuditAnchor
	if *anchorFile != "" {
		var code int
		if anchor, code = e.readAnchor(*anchorFile, *keyFile); code >= 0 {
			return code
		}
		opts = append(opts, enforce.WithAnchor(anchor))
	} else if *keyFile != "" {
		return e.badInput("audit verify: --key-file needs --anchor FILE")
	}
	return e.withStore(ctx, sf, func(st store) int {
		res, err := st.VerifyAudit(ctx, opts...)
		if err != nil {
			return e.failure("verify audit: %v", err)
		}
		if res.FirstBad != "" {
			fmt.Fprintf(e.stdout, "bad: record %s: %s (%d records checked)\n", res.FirstBad, res.Reason, res.Checked)
			return exitFailure
		}
		if res.Problem != "" {
			fmt.Fprintf(e.stdout, "bad: %s (%d records checked)\n", res.Problem, res.Checked)
			return exitFailure
		}
		if len(res.Gaps) > 0 {
			for _, g := range res.Gaps {
				fmt.Fprintf(e.stdout, "gap: record %s: %s\n", g.ID, g.Detail)
			}
			fmt.Fprintf(e.stdout, "bad: the chain links hold, but the trail has %d gap(s): records were lost (%d records checked)\n", len(res.Gaps), res.Checked)
			return exitFailure
		}
		var note []string
		if res.Truncated {
			note = append(note, "older records were trimmed; the check starts at the first retained record")
		}
		if *anchorFile != "" {
			note = append(note, fmt.Sprintf("anchored record %s present", anchor.ID))
		}
		if res.Failover != "" {
			// The links hold, but a failover may have taken records
			// without a trace: never call that trail intact.
			fmt.Fprintf(e.stdout, "unconfirmed: %d records, every link holds, but %s", res.Checked, res.Failover)
			if len(note) > 0 {
				fmt.Fprintf(e.stdout, " (%s)", strings.Join(note, "; "))
			}
			fmt.Fprintln(e.stdout)
			return exitOK
		}
		fmt.Fprintf(e.stdout, "ok: %d records, chain intact", res.Checked)
		if len(note) > 0 {
			fmt.Fprintf(e.stdout, " (%s)", strings.Join(note, "; "))
		}
		fmt.Fprintln(e.stdout)
		return exitOK
	})
}

// anchor verifies the audit trail and prints an anchor of its end (JSON,
// HMAC-signed with --key-file) to keep outside Redis, for `audit verify
// --anchor`. Exit 1 when the trail fails verification or is empty.
func (e *env) anchor(ctx context.Context, args []string) int {
	fs, sf := e.newStoreFlagSet("audit anchor", "audit anchor [--key-file FILE] [--redis-addr ADDR] [--config FILE]")
	keyFile := fs.String("key-file", "", "sign the anchor with HMAC-SHA256 under the key in `FILE`")
	if code := e.parseFlags(fs, args); code >= 0 {
		return code
	}
	var key []byte
	if *keyFile != "" {
		var err error
		if key, err = readAnchorKey(*keyFile); err != nil {
			return e.badInput("audit anchor: %v", err)
		}
	}
	return e.withStore(ctx, sf, func(st store) int {
		res, err := st.VerifyAudit(ctx)
		if err != nil {
			return e.failure("audit anchor: %v", err)
		}
		a, err := enforce.NewAuditAnchor(res, e.now())
		if err != nil {
			return e.failure("audit anchor: %v (run `callwarden audit verify`)", err)
		}
		if key != nil {
			a = a.Sign(key)
		}
		out, err := json.MarshalIndent(a, "", "  ")
		if err != nil {
			return e.failure("audit anchor: %v", err)
		}
		fmt.Fprintf(e.stdout, "%s\n", out)
		return exitOK
	})
}

// minAnchorKey is the shortest HMAC key accepted, in bytes.
const minAnchorKey = 16

// readAnchorKey reads an HMAC key file: its bytes, without a trailing
// newline.
func readAnchorKey(path string) ([]byte, error) {
	key, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--key-file: %w", err)
	}
	key = bytes.TrimRight(key, "\r\n")
	if len(key) < minAnchorKey {
		return nil, fmt.Errorf("--key-file %s: key shorter than %d bytes", path, minAnchorKey)
	}
	return key, nil
}

// readAnchor reads an anchor file and checks its signature under the key
// in keyFile. It returns the exit status to stop with, or -1.
func (e *env) readAnchor(path, keyFile string) (enforce.AuditAnchor, int) {
	var a enforce.AuditAnchor
	data, err := os.ReadFile(path)
	if err != nil {
		return a, e.badInput("audit verify: --anchor: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		return a, e.badInput("audit verify: --anchor %s: %v", path, err)
	}
	if a.Version != enforce.AuditAnchorVersion || a.ID == "" || a.Hash == "" {
		return a, e.badInput("audit verify: --anchor %s: not a version %d audit anchor with an id and a hash", path, enforce.AuditAnchorVersion)
	}
	switch {
	case keyFile == "" && a.HMAC != "":
		return a, e.badInput("audit verify: --anchor %s is signed: give the --key-file it was signed with", path)
	case keyFile == "":
		return a, -1
	}
	key, err := readAnchorKey(keyFile)
	if err != nil {
		return a, e.badInput("audit verify: %v", err)
	}
	if err := a.Verify(key); err != nil {
		fmt.Fprintf(e.stdout, "bad: anchor %s: %v\n", path, err)
		return a, exitFailure
	}
	return a, -1
}

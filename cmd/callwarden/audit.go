package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/httpapi"
)

// followSkew is how far back `audit tail --follow` looks behind the newest
// record it printed: records carry their deciders' clocks, and a daemon
// whose clock lags may append a record dated slightly earlier.
const followSkew = 5 * time.Second

// audit runs the `audit` subcommands.
func (e *env) audit(ctx context.Context, args []string) int {
	const want = "want: tail, verify, anchor"
	if len(args) == 0 {
		return e.badInput("audit: missing subcommand (%s)", want)
	}
	switch args[0] {
	case "tail":
		return e.tail(ctx, args[1:])
	case "verify":
		return e.verify(ctx, args[1:])
	case "anchor":
		return e.anchor(ctx, args[1:])
	}
	return e.badInput("audit: unknown subcommand %q (%s)", args[0], want)
}

// tail prints the audit records matching the filters, oldest first, one
// JSON object per line; with --follow it then polls for new ones until ctx
// ends. The filters are parsed by the API's parser, so the CLI and GET
// /v1/audit accept the same values. Records are printed as stored (caller
// numbers masked per the requester's profile when they were written): the
// CLI holds the store's credentials and reads as an administrator.
func (e *env) tail(ctx context.Context, args []string) int {
	fs := e.newFlagSet("audit tail", "audit tail [--follow] [--user U] [--target T] [--action A] [--decision allow|deny] [--since RFC3339] [--until RFC3339] [--limit N] [--redis-addr ADDR] [--config FILE]")
	params := map[string]*string{}
	for _, p := range []struct{ name, help string }{
		{httpapi.AuditParamUser, "only records of requester `USER`"},
		{httpapi.AuditParamTarget, "only records about `TARGET`"},
		{httpapi.AuditParamAction, "only records of `ACTION`"},
		{httpapi.AuditParamDecision, "only `DECISION`s: allow or deny"},
		{httpapi.AuditParamSince, "only records at or after `TIME` (RFC 3339)"},
		{httpapi.AuditParamUntil, "only records before `TIME` (RFC 3339)"},
		{httpapi.AuditParamLimit, "print at most the `N` most recent records (default 100)"},
	} {
		params[p.name] = fs.String(p.name, "", p.help)
	}
	follow := fs.Bool("follow", false, "keep printing new records until interrupted")
	var sf storeFlags
	sf.register(fs)
	if code := e.parseFlags(fs, args); code >= 0 {
		return code
	}
	q := url.Values{}
	for name, v := range params {
		if *v != "" {
			q.Set(name, *v)
		}
	}
	f, err := httpapi.ParseAuditQuery(q)
	if err != nil {
		var pe *httpapi.ParamError
		if errors.As(err, &pe) {
			return e.badInput("--%s: %v", pe.Param, pe.Err)
		}
		return e.badInput("%v", err)
	}
	st, code := e.openStore(ctx, &sf)
	if code >= 0 {
		return code
	}
	defer st.Close()

	t := tailer{out: e.stdout, seen: map[[sha256.Size]byte]time.Time{}}
	recs, err := st.ReadAudit(ctx, f)
	if err != nil {
		fmt.Fprintf(e.stderr, "callwarden: read audit: %v\n", err)
		return exitFailure
	}
	if err := t.print(recs); err != nil {
		fmt.Fprintf(e.stderr, "callwarden: write: %v\n", err)
		return exitFailure
	}
	if !*follow {
		return exitOK
	}
	tick := time.NewTicker(e.pollInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return exitOK
		case <-tick.C:
		}
		next := f
		next.Limit = 0
		if since := t.newest.Add(-followSkew); !t.newest.IsZero() && since.After(next.Since) {
			next.Since = since
		}
		recs, err := st.ReadAudit(ctx, next)
		if err != nil {
			if ctx.Err() != nil {
				return exitOK
			}
			// A store outage is transient for a follower: say so, keep going.
			fmt.Fprintf(e.stderr, "callwarden: read audit: %v (retrying)\n", err)
			continue
		}
		if err := t.print(recs); err != nil {
			fmt.Fprintf(e.stderr, "callwarden: write: %v\n", err)
			return exitFailure
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
	fs := e.newFlagSet("audit verify", "audit verify [--anchor FILE [--key-file FILE]] [--redis-addr ADDR] [--config FILE]")
	anchorFile := fs.String("anchor", "", "also check the anchor in `FILE` (written by `audit anchor`)")
	keyFile := fs.String("key-file", "", "HMAC key `FILE` the anchor was signed with")
	var sf storeFlags
	sf.register(fs)
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
	st, code := e.openStore(ctx, &sf)
	if code >= 0 {
		return code
	}
	defer st.Close()
	res, err := st.VerifyAudit(ctx, opts...)
	if err != nil {
		fmt.Fprintf(e.stderr, "callwarden: verify audit: %v\n", err)
		return exitFailure
	}
	if res.FirstBad != "" {
		fmt.Fprintf(e.stdout, "bad: record %s: %s (%d records checked)\n", res.FirstBad, res.Reason, res.Checked)
		return exitFailure
	}
	if res.Problem != "" {
		fmt.Fprintf(e.stdout, "bad: %s (%d records checked)\n", res.Problem, res.Checked)
		return exitFailure
	}
	var note []string
	if res.Truncated {
		note = append(note, "older records were trimmed; the check starts at the first retained record")
	}
	if *anchorFile != "" {
		note = append(note, fmt.Sprintf("anchored record %s present", anchor.ID))
	}
	fmt.Fprintf(e.stdout, "ok: %d records, chain intact", res.Checked)
	if len(note) > 0 {
		fmt.Fprintf(e.stdout, " (%s)", strings.Join(note, "; "))
	}
	fmt.Fprintln(e.stdout)
	return exitOK
}

// anchor verifies the audit trail and prints an anchor of its end (JSON,
// HMAC-signed with --key-file) to keep outside Redis, for `audit verify
// --anchor`. Exit 1 when the trail fails verification or is empty.
func (e *env) anchor(ctx context.Context, args []string) int {
	fs := e.newFlagSet("audit anchor", "audit anchor [--key-file FILE] [--redis-addr ADDR] [--config FILE]")
	keyFile := fs.String("key-file", "", "sign the anchor with HMAC-SHA256 under the key in `FILE`")
	var sf storeFlags
	sf.register(fs)
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
	st, code := e.openStore(ctx, &sf)
	if code >= 0 {
		return code
	}
	defer st.Close()
	res, err := st.VerifyAudit(ctx)
	if err != nil {
		fmt.Fprintf(e.stderr, "callwarden: audit anchor: %v\n", err)
		return exitFailure
	}
	a, err := enforce.NewAuditAnchor(res, e.now())
	if err != nil {
		fmt.Fprintf(e.stderr, "callwarden: audit anchor: %v (run `callwarden audit verify`)\n", err)
		return exitFailure
	}
	if key != nil {
		a = a.Sign(key)
	}
	out, err := json.MarshalIndent(a, "", "  ")
	if err != nil {
		fmt.Fprintf(e.stderr, "callwarden: audit anchor: %v\n", err)
		return exitFailure
	}
	fmt.Fprintf(e.stdout, "%s\n", out)
	return exitOK
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

// token runs the `token` subcommands: hash (offline), and add, revoke
// and list, which manage the token hashes kept in Redis for every daemon.
func (e *env) token(ctx context.Context, args []string) int {
	const want = "want: hash, add, revoke, list"
	if len(args) == 0 {
		return e.badInput("token: missing subcommand (%s)", want)
	}
	switch args[0] {
	case "hash":
		return e.tokenHash(args[1:])
	case "add":
		return e.tokenAdd(ctx, args[1:])
	case "revoke":
		return e.tokenRevoke(ctx, args[1:])
	case "list":
		return e.tokenList(ctx, args[1:])
	}
	return e.badInput("token: unknown subcommand %q (%s)", args[0], want)
}

// readToken reads one token from standard input.
func (e *env) readToken(cmd string) (string, int) {
	data, err := io.ReadAll(io.LimitReader(e.stdin, 64<<10))
	if err != nil {
		return "", e.badInput("%s: read standard input: %v", cmd, err)
	}
	tok := strings.TrimRight(string(data), "\r\n")
	if strings.TrimSpace(tok) == "" {
		return "", e.badInput("%s: no token on standard input", cmd)
	}
	if strings.ContainsAny(tok, "\r\n") {
		return "", e.badInput("%s: the token must be one line", cmd)
	}
	return tok, -1
}

func (e *env) tokenHash(args []string) int {
	fs := e.newFlagSet("token hash", "token hash < TOKEN")
	if code := e.parseFlags(fs, args); code >= 0 {
		return code
	}
	tok, code := e.readToken("token hash")
	if code >= 0 {
		return code
	}
	fmt.Fprintln(e.stdout, httpapi.HashToken(tok))
	return exitOK
}

// roleFlag registers --role: admin (default) or check. It returns the
// role as the token store spells it ("" for admin).
func roleFlag(fs *flag.FlagSet) func() (string, error) {
	role := fs.String("role", "admin", "token `ROLE`: admin (a user of the policy, admin API) or check (a named caller of /v1/check)")
	return func() (string, error) {
		r, err := httpapi.ParseRole(*role)
		if err != nil {
			return "", err
		}
		if r == httpapi.RoleCheck {
			return enforce.TokenRoleCheck, nil
		}
		return "", nil
	}
}

// tokenAdd stores the hash of a token read from stdin (or given with
// --sha256) for USER (or, with --role check, the check token NAME) in
// Redis; every daemon accepts it within its poll interval. The token
// itself is never written or printed.
func (e *env) tokenAdd(ctx context.Context, args []string) int {
	fs := e.newFlagSet("token add", "token add USER|NAME [--role admin|check] [--sha256 HEX] [--redis-addr ADDR] [--config FILE] < TOKEN")
	var sf storeFlags
	sf.register(fs)
	sum := fs.String("sha256", "", "the token's SHA-256 (`HEX`, from `token hash`) instead of the token on stdin")
	getRole := roleFlag(fs)
	pos, code := e.parseInterleaved(fs, args)
	if code >= 0 {
		return code
	}
	if len(pos) != 1 {
		fs.Usage()
		return e.badInput("token add: want USER or NAME, got %d arguments", len(pos))
	}
	role, err := getRole()
	if err != nil {
		return e.badInput("token add: --role: %v", err)
	}
	user, h := pos[0], strings.ToLower(strings.TrimSpace(*sum))
	if h == "" {
		tok, code := e.readToken("token add")
		if code >= 0 {
			return code
		}
		h = httpapi.HashToken(tok)
	}
	if _, err := httpapi.ParseRoleTokenHash(httpapi.Role(role), user, h); err != nil {
		return e.badInput("token add: %v", err)
	}
	st, code := e.openStore(ctx, &sf)
	if code >= 0 {
		return code
	}
	defer st.Close()
	if err := st.AddAdminToken(ctx, enforce.AdminToken{User: user, Role: role, SHA256: h}); err != nil {
		if errors.Is(err, enforce.ErrTokenTaken) {
			return e.badInput("token add: this token already belongs to another user or role")
		}
		fmt.Fprintf(e.stderr, "callwarden: token add: %v\n", err)
		return exitFailure
	}
	what := user
	if role == enforce.TokenRoleCheck {
		what = "check token " + user
	}
	e.auditCLI(ctx, st, user, "token add "+what+" (sha256 "+h[:12]+"...)")
	fmt.Fprintf(e.stdout, "added a token for %s (sha256 %s...)\n", what, h[:12])
	return exitOK
}

// tokenRevoke removes every token hash of USER from Redis.
func (e *env) tokenRevoke(ctx context.Context, args []string) int {
	fs := e.newFlagSet("token revoke", "token revoke USER|NAME [--role admin|check] [--redis-addr ADDR] [--config FILE]")
	var sf storeFlags
	sf.register(fs)
	getRole := roleFlag(fs)
	pos, code := e.parseInterleaved(fs, args)
	if code >= 0 {
		return code
	}
	if len(pos) != 1 {
		fs.Usage()
		return e.badInput("token revoke: want USER or NAME, got %d arguments", len(pos))
	}
	role, err := getRole()
	if err != nil {
		return e.badInput("token revoke: --role: %v", err)
	}
	st, code := e.openStore(ctx, &sf)
	if code >= 0 {
		return code
	}
	defer st.Close()
	n, err := st.RevokeAdminTokens(ctx, role, pos[0])
	if err != nil {
		fmt.Fprintf(e.stderr, "callwarden: token revoke: %v\n", err)
		return exitFailure
	}
	if n > 0 {
		e.auditCLI(ctx, st, pos[0], fmt.Sprintf("token revoke %s: %d tokens", pos[0], n))
	}
	fmt.Fprintf(e.stdout, "revoked %d tokens of %s (tokens in a daemon's config are not affected)\n", n, pos[0])
	return exitOK
}

// tokenList prints the users holding tokens in Redis, one line per hash
// (its first 12 hex digits).
func (e *env) tokenList(ctx context.Context, args []string) int {
	fs := e.newFlagSet("token list", "token list [--redis-addr ADDR] [--config FILE]")
	var sf storeFlags
	sf.register(fs)
	if code := e.parseFlags(fs, args); code >= 0 {
		return code
	}
	st, code := e.openStore(ctx, &sf)
	if code >= 0 {
		return code
	}
	defer st.Close()
	ts, err := st.AdminTokens(ctx)
	if err != nil {
		fmt.Fprintf(e.stderr, "callwarden: token list: %v\n", err)
		return exitFailure
	}
	for _, t := range ts {
		// Admin tokens print as before ("alice 0123..."); check tokens
		// are marked, as their name is no user of the policy.
		if t.Role == enforce.TokenRoleCheck {
			fmt.Fprintf(e.stdout, "%s %s... (check)\n", t.User, t.SHA256[:12])
			continue
		}
		fmt.Fprintf(e.stdout, "%s %s...\n", t.User, t.SHA256[:12])
	}
	return exitOK
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/httpauth"
)

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

func (e *env) tokenHash(_ context.Context, args []string) int {
	fs := e.newFlagSet("token hash", "token hash < TOKEN")
	if code := e.parseFlags(fs, args); code >= 0 {
		return code
	}
	tok, code := e.readToken("token hash")
	if code >= 0 {
		return code
	}
	fmt.Fprintln(e.stdout, httpauth.HashToken(tok))
	return exitOK
}

// roleFlag registers --role: admin (default) or check. It returns the
// role as the token store spells it ("" for admin).
func roleFlag(fs *flag.FlagSet) func() (string, error) {
	role := fs.String("role", "admin", "token `ROLE`: admin (a user of the policy, admin API) or check (a named caller of /v1/check)")
	return func() (string, error) {
		r, err := httpauth.ParseRole(*role)
		if err != nil {
			return "", err
		}
		if r == httpauth.RoleCheck {
			return enforce.TokenRoleCheck, nil
		}
		return "", nil
	}
}

// tokenTarget parses the arguments of a token command that names one
// USER or NAME, with --role (roleFlag): the name and the role as the token
// store spells it, or the exit status to stop with.
func (e *env) tokenTarget(cmd string, fs *flag.FlagSet, getRole func() (string, error), args []string) (name, role string, code int) {
	pos, code := e.parsePositional(fs, args, 1, "USER or NAME")
	if code >= 0 {
		return "", "", code
	}
	role, err := getRole()
	if err != nil {
		return "", "", e.badInput("%s: --role: %v", cmd, err)
	}
	return pos[0], role, -1
}

// tokenAdd stores the hash of a token read from stdin (or given with
// --sha256) for USER (or, with --role check, the check token NAME) in
// Redis; every daemon accepts it within its poll interval. The token
// itself is never written or printed.
func (e *env) tokenAdd(ctx context.Context, args []string) int {
	fs, sf := e.newStoreFlagSet("token add", "token add USER|NAME [--role admin|check] [--sha256 HEX] [--redis-addr ADDR] [--config FILE] < TOKEN")
	sum := fs.String("sha256", "", "the token's SHA-256 (`HEX`, from `token hash`) instead of the token on stdin")
	getRole := roleFlag(fs)
	name, role, code := e.tokenTarget("token add", fs, getRole, args)
	if code >= 0 {
		return code
	}
	user, h := name, strings.ToLower(strings.TrimSpace(*sum))
	if h == "" {
		tok, code := e.readToken("token add")
		if code >= 0 {
			return code
		}
		h = httpauth.HashToken(tok)
	}
	if _, err := httpauth.ParseRoleTokenHash(httpauth.Role(role), user, h); err != nil {
		return e.badInput("token add: %v", err)
	}
	return e.withStore(ctx, sf, func(st store) int {
		if err := st.AddAdminToken(ctx, enforce.AdminToken{User: user, Role: role, SHA256: h}); err != nil {
			if errors.Is(err, enforce.ErrTokenTaken) {
				return e.badInput("token add: this token already belongs to another user or role")
			}
			return e.failure("token add: %v", err)
		}
		what := user
		if role == enforce.TokenRoleCheck {
			what = "check token " + user
		}
		e.auditCLI(ctx, st, user, "token add "+what+" (sha256 "+h[:12]+"...)")
		fmt.Fprintf(e.stdout, "added a token for %s (sha256 %s...)\n", what, h[:12])
		return exitOK
	})
}

// tokenRevoke removes every token hash of USER from Redis.
func (e *env) tokenRevoke(ctx context.Context, args []string) int {
	fs, sf := e.newStoreFlagSet("token revoke", "token revoke USER|NAME [--role admin|check] [--redis-addr ADDR] [--config FILE]")
	getRole := roleFlag(fs)
	name, role, code := e.tokenTarget("token revoke", fs, getRole, args)
	if code >= 0 {
		return code
	}
	return e.withStore(ctx, sf, func(st store) int {
		n, err := st.RevokeAdminTokens(ctx, role, name)
		if err != nil {
			return e.failure("token revoke: %v", err)
		}
		if n > 0 {
			e.auditCLI(ctx, st, name, fmt.Sprintf("token revoke %s: %d tokens", name, n))
		}
		fmt.Fprintf(e.stdout, "revoked %d tokens of %s (tokens in a daemon's config are not affected)\n", n, name)
		return exitOK
	})
}

// tokenList prints the users holding tokens in Redis, one line per hash
// (its first 12 hex digits).
func (e *env) tokenList(ctx context.Context, args []string) int {
	return e.onStore(ctx, args, "token list", "token list [--redis-addr ADDR] [--config FILE]", func(st store) int {
		ts, err := st.AdminTokens(ctx)
		if err != nil {
			return e.failure("token list: %v", err)
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
	})
}

// Package httpauthtest holds test helpers for the users of pbx/httpauth.
package httpauthtest

import (
	"testing"

	"github.com/callwarden/callwarden/pbx/httpauth"
)

// Tokens authenticates each user's admin token, "<user>-token", as that
// user.
func Tokens(tb testing.TB, users ...string) httpauth.Authenticator {
	tb.Helper()
	tokens := make([]httpauth.TokenHash, len(users))
	for i, u := range users {
		th, err := httpauth.ParseTokenHash(u, httpauth.HashToken(u+"-token"))
		if err != nil {
			tb.Fatal(err)
		}
		tokens[i] = th
	}
	return httpauth.NewTokenSet(tokens)
}

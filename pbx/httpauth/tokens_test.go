package httpauth_test

import (
	"strings"
	"testing"

	"github.com/callwarden/callwarden/pbx/httpauth"
)

func TestTokenSet(t *testing.T) {
	th, err := httpauth.ParseTokenHash("alice", httpauth.HashToken("s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	set := httpauth.NewTokenSet([]httpauth.TokenHash{th})
	cases := []struct {
		name, token, user string
		ok                bool
	}{
		{"the right token authenticates its user", "s3cret", "alice", true},
		{"another token does not", "s3cret2", "", false},
		{"an empty token does not", "", "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u, ok := set.Authenticate(tc.token)
			if u.Name != tc.user || ok != tc.ok {
				t.Errorf("Authenticate(%q) = %q, %v", tc.token, u, ok)
			}
		})
	}
	t.Run("malformed hashes are refused", func(t *testing.T) {
		for _, h := range []string{"", "abc", strings.Repeat("z", 64)} {
			if _, err := httpauth.ParseTokenHash("alice", h); err == nil {
				t.Errorf("ParseTokenHash(%q) accepted", h)
			}
		}
		if _, err := httpauth.ParseTokenHash("", httpauth.HashToken("x")); err == nil {
			t.Error("empty user accepted")
		}
	})
}

func TestDynamicTokens(t *testing.T) {
	hash := func(user, tok string) httpauth.TokenHash {
		th, err := httpauth.ParseTokenHash(user, httpauth.HashToken(tok))
		if err != nil {
			t.Fatal(err)
		}
		return th
	}
	var dyn httpauth.DynamicTokens
	auth := httpauth.AnyOf(httpauth.NewTokenSet([]httpauth.TokenHash{hash("root", "from-config")}), &dyn)
	t.Run("before the first set only the static tokens authenticate", func(t *testing.T) {
		if u, ok := auth.Authenticate("from-config"); !ok || u.Name != "root" {
			t.Fatalf("config token: %q, %v", u, ok)
		}
		if _, ok := auth.Authenticate("from-redis"); ok {
			t.Fatal("an unknown token authenticated")
		}
	})
	t.Run("a set token authenticates its user", func(t *testing.T) {
		dyn.Set([]httpauth.TokenHash{hash("alice", "from-redis")})
		if u, ok := auth.Authenticate("from-redis"); !ok || u.Name != "alice" {
			t.Fatalf("stored token: %q, %v", u, ok)
		}
	})
	t.Run("a revoked token stops authenticating at the next set", func(t *testing.T) {
		dyn.Set(nil)
		if _, ok := auth.Authenticate("from-redis"); ok {
			t.Fatal("a revoked token still authenticates")
		}
		if _, ok := auth.Authenticate("from-config"); !ok {
			t.Fatal("the config token stopped working")
		}
	})
}

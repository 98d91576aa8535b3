package storetest

import (
	"errors"
	"strings"
	"testing"

	"github.com/callwarden/callwarden/enforce"
)

// hash returns a well-formed token hash made of one repeated hex digit.
func hash(d string) string { return strings.Repeat(d, 64) }

// RunTokenStore runs the contract of a enforce.TokenStore; newStore returns
// an empty store of its own for each subtest.
func RunTokenStore(t *testing.T, newStore func(t *testing.T) enforce.TokenStore) {
	t.Run("added hashes list back sorted by user", func(t *testing.T) {
		s := newStore(t)
		for _, tok := range []enforce.AdminToken{{User: "root", SHA256: hash("b")}, {User: "alice", SHA256: hash("c")}, {User: "root", SHA256: hash("a")}} {
			if err := s.AddAdminToken(testContext(t), tok); err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.AdminTokens(testContext(t))
		if err != nil {
			t.Fatal(err)
		}
		want := []enforce.AdminToken{{User: "alice", SHA256: hash("c")}, {User: "root", SHA256: hash("a")}, {User: "root", SHA256: hash("b")}}
		if len(got) != len(want) {
			t.Fatalf("AdminTokens = %v, want %v", got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("AdminTokens = %v, want %v", got, want)
			}
		}
	})
	t.Run("a hash belongs to one user", func(t *testing.T) {
		s := newStore(t)
		if err := s.AddAdminToken(testContext(t), enforce.AdminToken{User: "root", SHA256: hash("a")}); err != nil {
			t.Fatal(err)
		}
		if err := s.AddAdminToken(testContext(t), enforce.AdminToken{User: "root", SHA256: hash("a")}); err != nil {
			t.Fatalf("adding the same hash for the same user again: %v", err)
		}
		if err := s.AddAdminToken(testContext(t), enforce.AdminToken{User: "alice", SHA256: hash("a")}); !errors.Is(err, enforce.ErrTokenTaken) {
			t.Fatalf("AddAdminToken for another user = %v, want ErrTokenTaken", err)
		}
	})
	t.Run("malformed entries are refused", func(t *testing.T) {
		s := newStore(t)
		for _, tok := range []enforce.AdminToken{{User: "", SHA256: hash("a")}, {User: "root", SHA256: "abc"}, {User: "root", SHA256: strings.ToUpper(hash("a"))}} {
			if err := s.AddAdminToken(testContext(t), tok); err == nil {
				t.Errorf("AddAdminToken(%+v) accepted", tok)
			}
		}
	})
	t.Run("revoking a user removes all its hashes and only them", func(t *testing.T) {
		s := newStore(t)
		for _, tok := range []enforce.AdminToken{{User: "root", SHA256: hash("a")}, {User: "root", SHA256: hash("b")}, {User: "alice", SHA256: hash("c")}} {
			if err := s.AddAdminToken(testContext(t), tok); err != nil {
				t.Fatal(err)
			}
		}
		n, err := s.RevokeAdminTokens(testContext(t), "", "root")
		if err != nil || n != 2 {
			t.Fatalf("RevokeAdminTokens = %d, %v; want 2", n, err)
		}
		got, _ := s.AdminTokens(testContext(t))
		if len(got) != 1 || got[0].User != "alice" {
			t.Fatalf("after revoking root: %v", got)
		}
		if n, err := s.RevokeAdminTokens(testContext(t), "", "nobody"); err != nil || n != 0 {
			t.Fatalf("revoking an unknown user = %d, %v", n, err)
		}
	})
	t.Run("check tokens are kept apart from admin tokens of the same name", func(t *testing.T) {
		s := newStore(t)
		for _, tok := range []enforce.AdminToken{{User: "pbx", SHA256: hash("a")}, {User: "pbx", Role: enforce.TokenRoleCheck, SHA256: hash("b")}} {
			if err := s.AddAdminToken(testContext(t), tok); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.AddAdminToken(testContext(t), enforce.AdminToken{User: "pbx", Role: enforce.TokenRoleCheck, SHA256: hash("a")}); !errors.Is(err, enforce.ErrTokenTaken) {
			t.Fatalf("an admin hash added again as a check token = %v, want ErrTokenTaken", err)
		}
		got, _ := s.AdminTokens(testContext(t))
		want := []enforce.AdminToken{{User: "pbx", SHA256: hash("a")}, {User: "pbx", Role: enforce.TokenRoleCheck, SHA256: hash("b")}}
		if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
			t.Fatalf("AdminTokens = %v, want %v", got, want)
		}
		if n, err := s.RevokeAdminTokens(testContext(t), enforce.TokenRoleCheck, "pbx"); err != nil || n != 1 {
			t.Fatalf("revoking the check tokens of pbx = %d, %v; want 1", n, err)
		}
		got, _ = s.AdminTokens(testContext(t))
		if len(got) != 1 || got[0] != want[0] {
			t.Fatalf("after revoking the check token: %v, want the admin token only", got)
		}
		if err := s.AddAdminToken(testContext(t), enforce.AdminToken{User: "x", Role: "root", SHA256: hash("c")}); err == nil {
			t.Fatal("an unknown role was accepted")
		}
	})
}

package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/callwarden/callwarden/enforce"
)

func TestAuditAnchor(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "anchor.key")
	if err := os.WriteFile(keyFile, []byte("0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	filled := func(t *testing.T, n int) *memoryStore {
		t.Helper()
		st := seededStore(t)
		for i := range n {
			if err := st.Audit(ctx, enforce.AuditRecord{Time: time.Date(2026, 11, 10, 9, i, 0, 0, time.UTC), Source: "asterisk",
				User: "alice", Action: "monitor.listen", Target: "dave", Decision: "allow", Reason: "granted"}); err != nil {
				t.Fatal(err)
			}
		}
		return st
	}
	anchorOf := func(t *testing.T, st store, args ...string) string {
		t.Helper()
		r := runStore(t, ctx, st, "", append(append([]string{"audit", "anchor"}, storeArgs...), args...)...)
		if r.code != 0 {
			t.Fatalf("audit anchor: %+v", r)
		}
		path := filepath.Join(t.TempDir(), "anchor.json")
		if err := os.WriteFile(path, []byte(r.stdout), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	verify := func(st store, args ...string) result {
		return runStore(t, ctx, st, "", append(append([]string{"audit", "verify"}, storeArgs...), args...)...)
	}

	t.Run("a signed anchor names the head and verifies while the trail only grows", func(t *testing.T) {
		st := filled(t, 3)
		path := anchorOf(t, st, "--key-file", keyFile)
		var a enforce.AuditAnchor
		data, _ := os.ReadFile(path)
		if err := json.Unmarshal(data, &a); err != nil || a.Count != 3 || a.Hash == "" || a.HMAC == "" {
			t.Fatalf("anchor %s: %+v, %v", data, a, err)
		}
		if err := st.Audit(ctx, enforce.AuditRecord{Time: time.Now(), Source: "http", User: "bob", Action: "monitor.listen", Decision: "deny", Reason: "out_of_scope"}); err != nil {
			t.Fatal(err)
		}
		r := verify(st, "--anchor", path, "--key-file", keyFile)
		if r.code != 0 || !strings.HasPrefix(r.stdout, "ok: 4 records, chain intact") || !strings.Contains(r.stdout, a.ID) {
			t.Fatalf("verify --anchor: %+v", r)
		}
	})
	t.Run("an edited anchor is refused", func(t *testing.T) {
		st := filled(t, 3)
		path := anchorOf(t, st, "--key-file", keyFile)
		data, _ := os.ReadFile(path)
		if err := os.WriteFile(path, []byte(strings.Replace(string(data), `"count": 3`, `"count": 2`, 1)), 0o600); err != nil {
			t.Fatal(err)
		}
		if r := verify(st, "--anchor", path, "--key-file", keyFile); r.code != 1 || !strings.Contains(r.stdout+r.stderr, "altered") {
			t.Fatalf("verify with an edited anchor: %+v", r)
		}
	})
	t.Run("a signed anchor needs the key", func(t *testing.T) {
		st := filled(t, 3)
		path := anchorOf(t, st, "--key-file", keyFile)
		if r := verify(st, "--anchor", path); r.code != 2 || !strings.Contains(r.stderr, "--key-file") {
			t.Fatalf("verify without the key: %+v", r)
		}
	})
	t.Run("an anchor of another trail fails, naming the anchored record", func(t *testing.T) {
		path := anchorOf(t, filled(t, 5))
		var a enforce.AuditAnchor
		data, _ := os.ReadFile(path)
		if err := json.Unmarshal(data, &a); err != nil {
			t.Fatal(err)
		}
		r := verify(filled(t, 2), "--anchor", path)
		if r.code != 1 || !strings.HasPrefix(r.stdout, "bad: ") || !strings.Contains(r.stdout, a.ID) {
			t.Fatalf("verify against another trail's anchor: %+v", r)
		}
	})
	t.Run("an empty trail has nothing to anchor", func(t *testing.T) {
		if r := runStore(t, ctx, seededStore(t), "", append([]string{"audit", "anchor"}, storeArgs...)...); r.code != 1 || !strings.Contains(r.stderr, "empty") {
			t.Fatalf("anchor of an empty trail: %+v", r)
		}
	})
}

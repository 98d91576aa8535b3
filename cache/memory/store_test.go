package memory_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/callwarden/callwarden/cache/memory"
	"github.com/callwarden/callwarden/cache/storetest"
	"github.com/callwarden/callwarden/enforce"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testContext(t *testing.T) context.Context { return storetest.Context(t, 10*time.Second) }

func TestMemoryPolicyStoreContract(t *testing.T) {
	storetest.RunPolicyStore(t, func(*testing.T) enforce.PolicyStore { return memory.NewStore() })
}

func TestMemoryRecordingStoreContract(t *testing.T) {
	storetest.RunRecordingStore(t, func(*testing.T) enforce.RecordingStore { return memory.NewRecordings() })
}

func TestMemoryAuditLogContract(t *testing.T) {
	storetest.RunAuditLog(t, func(*testing.T) enforce.AuditLog { return memory.NewAuditLog(memory.AuditOptions{}) })
}

func TestFileStore(t *testing.T) {
	t.Run("serves the loaded policy and refuses applies", func(t *testing.T) {
		f := memory.NewFile(func() (enforce.Policy, error) { return storetest.Policy(t), nil })
		p, gen, err := f.Policy(testContext(t))
		if err != nil || gen != 1 {
			t.Fatalf("Policy: generation %d, %v", gen, err)
		}
		if d := enforce.DiffPolicies(storetest.Policy(t), p); !d.Empty() {
			t.Fatalf("file policy differs: %+v", d)
		}
		if _, _, err := f.ApplyPolicy(testContext(t), p, enforce.Unconditionally()); !errors.Is(err, enforce.ErrReadOnly) {
			t.Fatalf("ApplyPolicy err = %v, want ErrReadOnly", err)
		}
	})
	t.Run("the generation grows only when the file's content changes", func(t *testing.T) {
		p := storetest.Policy(t)
		f := memory.NewFile(func() (enforce.Policy, error) { return p, nil })
		g1, _ := f.Generation(testContext(t))
		g2, _ := f.Generation(testContext(t))
		p.Users = p.Users[:1]
		g3, _ := f.Generation(testContext(t))
		if g1 != 1 || g2 != 1 || g3 != 2 {
			t.Fatalf("generations %d %d %d, want 1 1 2", g1, g2, g3)
		}
	})
	t.Run("a load error is returned wrapped", func(t *testing.T) {
		boom := errors.New("profiles.yaml:3: users[0].profile: unknown")
		f := memory.NewFile(func() (enforce.Policy, error) { return enforce.Policy{}, boom })
		if _, _, err := f.Policy(testContext(t)); !errors.Is(err, boom) {
			t.Fatalf("err = %v, want the load error", err)
		}
	})
}

func TestMemoryNotifiesWatchers(t *testing.T) {
	m := memory.NewStore()
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := m.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	gen, _, err := m.ApplyPolicy(testContext(t), storetest.Policy(t), enforce.Unconditionally())
	if err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-ch:
		if got != gen {
			t.Fatalf("notified generation %d, want %d", got, gen)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no notification")
	}
	cancel()
	select {
	case _, ok := <-ch:
		if ok {
			t.Fatal("unexpected notification after cancel")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("watch channel not closed after cancel")
	}
}

func TestMemoryIncrementalContract(t *testing.T) {
	storetest.RunIncremental(t, func(*testing.T) storetest.IncrementalStore { return memory.NewStore() })
}

func TestMemoryTokenStoreContract(t *testing.T) {
	storetest.RunTokenStore(t, func(*testing.T) enforce.TokenStore { return memory.NewTokens() })
}

func TestSessionsContract(t *testing.T) {
	storetest.RunSessionStore(t, func(*testing.T) enforce.SessionStore { return memory.NewSessions() })
}

func TestActiveRecordingsContract(t *testing.T) {
	storetest.RunActiveRecordings(t, func(*testing.T) storetest.LiveRecordingStore { return memory.NewRecordings() })
}

func TestMemorySessionEndsAreKeptForSessionEndKeep(t *testing.T) {
	ctx := context.Background()
	s := memory.NewSessions()
	t0 := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	for i, at := range []time.Time{t0, t0.Add(time.Minute), t0.Add(enforce.SessionEndKeep + 30*time.Second)} {
		if err := s.EndSession(ctx, enforce.EndedSession{ID: fmt.Sprint("s", i), Cause: enforce.CauseTargetHangup, At: at}); err != nil {
			t.Fatal(err)
		}
	}
	ends, err := s.SessionEnds(ctx, []string{"s0", "s1", "s2"})
	if err != nil || len(ends) != 2 || ends["s0"].Cause != "" || ends["s1"].Cause == "" || ends["s2"].Cause == "" {
		t.Errorf("ends %+v, %v: want s0 forgotten (older than SessionEndKeep before the newest), s1 and s2 kept", ends, err)
	}
}

func TestMemoryRecordingCatalogueContract(t *testing.T) {
	storetest.RunRecordingCatalogue(t, func(*testing.T) enforce.RecordingCatalogue { return memory.NewRecordings() })
}

func TestWatchdogStoreContract(t *testing.T) {
	storetest.RunWatchdogStore(t, func(*testing.T) enforce.WatchdogStore { return memory.NewWatchdog() })
}

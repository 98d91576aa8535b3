package cache_test

import (
	"sync"
	"testing"
	"time"

	"github.com/callwarden/callwarden/cache"
	"github.com/callwarden/callwarden/cache/memory"
	"github.com/callwarden/callwarden/cache/storetest"
	"github.com/callwarden/callwarden/enforce"
)

func TestLoaderTellsEveryInstalledSnapshot(t *testing.T) {
	src := &countingSource{Store: memory.NewStore()}
	if _, _, err := src.ApplyPolicy(testContext(t), storetest.Policy(t), enforce.Unconditionally()); err != nil {
		t.Fatal(err)
	}
	var (
		mu   sync.Mutex
		gens []uint64
	)
	l := startLoader(t, cache.LoaderOptions{Store: src, Incremental: src, Watch: src.Watch, Generation: src.Generation,
		PollInterval: time.Hour, OnInstall: func(s *enforce.Snapshot) {
			mu.Lock()
			gens = append(gens, s.Generation())
			mu.Unlock()
		}})
	waitFor(t, "the first snapshot is loaded", func() bool { return l.Snapshot() != nil })
	base := l.Snapshot()
	alice, _ := base.User("alice")
	alice.Profile = ""
	gen, _, err := src.ApplyPatch(testContext(t), base, enforce.PolicyPatch{Users: []enforce.User{alice}})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the patch is followed", func() bool { return l.Generation() == gen })
	mu.Lock()
	defer mu.Unlock()
	if len(gens) != 2 || gens[0] != base.Generation() || gens[1] != gen {
		t.Fatalf("OnInstall saw generations %v, want [%d %d]: the load, then the patch", gens, base.Generation(), gen)
	}
}

package config

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/callwarden/callwarden/enforce"
)

// largePolicy is a legitimate store of n users, each on a few queues and a
// team with two identities, under a handful of profiles.
func largePolicy(tb testing.TB, n int) enforce.Policy {
	tb.Helper()
	p := MustParseProfiles(tb, "profiles.yaml", []byte("version: 1\nprofiles:\n"+
		"  - {name: supervisor, grants: [{actions: [monitor.listen, monitor.whisper], queues: assigned}]}\n"+
		"  - {name: agent, grants: [{actions: [presence.view], agents: self}]}\n"))
	p.Users = make([]enforce.User, n)
	for i := range n {
		prof := "agent"
		if i%50 == 0 {
			prof = "supervisor"
		}
		p.Users[i] = enforce.User{
			ID:         fmt.Sprintf("u%06d", i),
			Profile:    prof,
			Queues:     []string{fmt.Sprintf("q%d", i%97), fmt.Sprintf("q%d", i%89), fmt.Sprintf("q%d", i%83)},
			Teams:      []string{fmt.Sprintf("t%d", i%300)},
			Identities: []string{fmt.Sprintf("PJSIP/%d", 100000+i), fmt.Sprintf("%d", 100000+i)},
		}
	}
	return p
}

// largeFile writes n users with a few queues each, the way an operator
// (or a script) writes them, with no alias at all.
func largeFile(n int) []byte {
	var b strings.Builder
	b.WriteString("version: 1\nprofiles:\n  - name: agent\n    grants:\n      - actions: [presence.view]\n        agents: self\nusers:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - id: u%06d\n    profile: agent\n    queues: [q%d, q%d, q%d]\n    teams: [t%d]\n    identities: [PJSIP/%d, \"%d\"]\n",
			i, i%97, i%89, i%83, i%300, 100000+i, 100000+i)
	}
	return []byte(b.String())
}

func TestLargeProfilesFilesAreNotAliasBombs(t *testing.T) {
	// 100,000 users are parsed by the round trip below.
	for _, n := range []int{200_000} {
		t.Run(fmt.Sprintf("%d users with a few queues each parse", n), func(t *testing.T) {
			start := time.Now()
			p := MustParseProfiles(t, "big.yaml", largeFile(n))
			if len(p.Users) != n || len(p.Users[n-1].Queues) != 3 {
				t.Fatalf("parsed %d users, last %+v", len(p.Users), p.Users[len(p.Users)-1])
			}
			t.Logf("%d users parsed in %v", n, time.Since(start))
		})
	}
	t.Run("an exported store of 100000 users applies back unchanged", func(t *testing.T) {
		want := largePolicy(t, 100_000)
		data, err := MarshalProfiles(want)
		if err != nil {
			t.Fatal(err)
		}
		got := MustParseProfiles(t, "export.yaml", data)
		if len(got.Users) != len(want.Users) || len(got.Profiles) != len(want.Profiles) {
			t.Fatalf("round trip: %d users, %d profiles; want %d, %d", len(got.Users), len(got.Profiles), len(want.Users), len(want.Profiles))
		}
		for _, i := range []int{0, 1, 50, 99_999} {
			g, w := got.Users[i], want.Users[i]
			if g.ID != w.ID || g.Profile != w.Profile || strings.Join(g.Queues, ",") != strings.Join(w.Queues, ",") ||
				strings.Join(g.Identities, ",") != strings.Join(w.Identities, ",") {
				t.Errorf("user %d: got %+v, want %+v", i, g, w)
			}
		}
	})
	t.Run("a billion laughs is still refused, quickly", func(t *testing.T) {
		// Nine levels of ten aliases each: 10^9 nodes from under 1 kB.
		var b strings.Builder
		b.WriteString("version: 1\nl0: &l0 [monitor.listen]\n")
		for i := 1; i <= 9; i++ {
			fmt.Fprintf(&b, "l%d: &l%d [", i, i)
			for j := range 10 {
				if j > 0 {
					b.WriteString(", ")
				}
				fmt.Fprintf(&b, "*l%d", i-1)
			}
			b.WriteString("]\n")
		}
		b.WriteString("profiles: [{name: p, grants: [{actions: *l9}]}]\n")
		start := time.Now()
		_, err := ParseProfiles("laughs.yaml", []byte(b.String()))
		if err == nil || !strings.Contains(err.Error(), "through aliases") {
			t.Fatalf("ParseProfiles = %.300v; want the alias expansion refused", err)
		}
		if _, err := ParseProfiles("cycle.yaml", []byte("version: 1\nprofiles: &a [*a]\n")); err == nil ||
			!strings.Contains(err.Error(), "through aliases") {
			t.Errorf("an alias cycle: ParseProfiles = %.300v; want it refused", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("refusing took %v", d)
		}
	})
}

// BenchmarkLoadProfiles100k measures what a daemon does with a profiles
// file of 100,000 users at start or SIGHUP: read and parse it, then compile
// the snapshot it decides from. B/user is the live heap of that snapshot
// (after a collection, the parsed file dropped) per user.
func BenchmarkLoadProfiles100k(b *testing.B) {
	const n = 100_000
	path := filepath.Join(b.TempDir(), "profiles.yaml")
	if err := os.WriteFile(path, largeFile(n), 0o600); err != nil {
		b.Fatal(err)
	}
	load := func() (s *enforce.Snapshot) {
		p, err := LoadProfiles(path)
		if err == nil {
			s, err = enforce.NewSnapshot(p, 1)
		}
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
	b.ReportAllocs()
	// On a shared machine the wall time counts other processes' turns; the
	// process's CPU time (the collector's included) does not.
	var ru0, ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	loads := 0
	for b.Loop() {
		load()
		loads++
	}
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	used := ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano()
	b.ReportMetric(float64(used)/1e6/float64(loads), "cpu-ms/op")
	b.StopTimer()
	// The live heap is read after a full collection, before and with the
	// snapshot.
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	s := load()
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/n, "B/user")
	if s.UserCount() != n {
		b.Fatalf("loaded %d users, want %d", s.UserCount(), n)
	}
}

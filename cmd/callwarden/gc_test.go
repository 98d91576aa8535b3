package main

import (
	"runtime/debug"
	"testing"
)

// gcPercent returns the collector's percentage without changing it.
func gcPercent() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

func TestGCPercentKeepsHeadroomForASmallHeap(t *testing.T) {
	for _, tc := range []struct {
		live uint64
		want int
	}{
		{0, 800},              // before the first collection: as for 4 MiB
		{1 << 20, 800},        // the runtime's least goal grows with GOGC: 4 MiB at most
		{4 << 20, 800},        // 4 MiB may grow by 32 MiB
		{10 << 20, 320},       // 10 MiB: a collection every 32 MiB, not every 10
		{32 << 20, 100},       // from 32 MiB on, Go's default
		{1 << 30, 100},        // never less than the default
		{(32 << 20) - 1, 100}, // rounding never goes under the default
	} {
		if got := gcPercentFor(tc.live); got != tc.want {
			t.Errorf("gcPercentFor(%d) = %d, want %d", tc.live, got, tc.want)
		}
	}
}

func TestServeTunesTheCollectorUnlessGOGCIsSet(t *testing.T) {
	before := gcPercent()
	t.Cleanup(func() { debug.SetGCPercent(before) })
	debug.SetGCPercent(100)

	stop := keepGCHeadroom(func(string) string { return "" })
	// A test binary's live heap is a few MB: the percentage is raised.
	if p := gcPercent(); p <= 100 {
		t.Errorf("while serving, GOGC = %d, want above 100 for a small heap", p)
	}
	stop()
	stop() // idempotent
	if p := gcPercent(); p != 100 {
		t.Errorf("after serving, GOGC = %d, want the 100 found", p)
	}

	env := map[string]string{"GOGC": "50"}
	debug.SetGCPercent(50)
	stop = keepGCHeadroom(func(k string) string { return env[k] })
	if p := gcPercent(); p != 50 {
		t.Errorf("with GOGC=50 in the environment, GOGC = %d, want 50 untouched", p)
	}
	stop()
}

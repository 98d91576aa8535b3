package main

import (
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"time"
)

// gcHeadroom is the least the heap may grow between two collections while
// the daemon serves. Go's default (GOGC=100) lets a heap grow by its live
// size: for a daemon of a few MB that is a collection every ~100 ms under
// load (7 a second at 20,000 checks/s with 10,000 users), and every request
// that meets one waits on its mark phase. With 32 MiB the same daemon
// collects about twice a second, and its p99 at an offered 20,000 checks/s
// fell by a fifth to a third (docs/performance.md, "GC headroom"), for
// about 25 MB more resident memory. A daemon whose live heap exceeds
// 32 MiB keeps Go's default.
const gcHeadroom = 32 << 20

// gcTunePeriod is how often the live heap is read again to follow a
// policy that grows or shrinks.
const gcTunePeriod = 5 * time.Second

// gcPercentFor returns the GOGC that gives a live heap of live bytes at
// least gcHeadroom of growth, and never less than Go's default (100).
// A heap under 4 MiB counts as 4 MiB (before the first collection it reads
// 0): the runtime's least heap goal, 4 MiB at GOGC=100, grows with GOGC,
// so a larger percentage would let a small heap grow far past the
// headroom.
func gcPercentFor(live uint64) int {
	live = max(live, 4<<20)
	return max(100, int(gcHeadroom*100/live))
}

// keepGCHeadroom sets the collector's percentage from the live heap now
// and every gcTunePeriod (gcPercentFor) until stop, which restores the
// percentage it found. It does nothing when the environment sets GOGC:
// the operator's choice wins. A GOMEMLIMIT still caps the heap.
func keepGCHeadroom(getenv func(string) string) (stop func()) {
	if getenv("GOGC") != "" {
		return func() {}
	}
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	liveHeap := func() uint64 {
		metrics.Read(sample)
		if sample[0].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return sample[0].Value.Uint64()
	}
	last := gcPercentFor(liveHeap())
	found := debug.SetGCPercent(last)
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(gcTunePeriod)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				// A live heap that moves by a few percent keeps the
				// setting: each change stops the world briefly.
				if p := gcPercentFor(liveHeap()); p*10 > last*11 || p*10 < last*9 {
					debug.SetGCPercent(p)
					last = p
				}
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			<-stopped
			debug.SetGCPercent(found)
		})
	}
}

package asterisk

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/callwarden/callwarden/cache/memory"
)

// strandedDialplan is a ChannelDialplan event: channel sup-a enters
// Stasis(callwarden-a,monitor,listen,2001).
const strandedDialplan = `{"type":"ChannelDialplan","application":"callwarden-b","timestamp":"2026-11-23T10:00:00.000+0000",` +
	`"dialplan_app":"Stasis","dialplan_app_data":"callwarden-a,monitor,listen,2001",` +
	`"channel":{"id":"sup-a","name":"PJSIP/1001-00000001","state":"Up","caller":{"number":"1001"},"creationtime":"2026-11-23T10:00:00.000+0000"}}`

// listedInStasis is sup-a as GET /channels/sup-a lists it, in the
// dialplan application app with data.
func listedInStasis(app, data string) string {
	return `{"id":"sup-a","name":"PJSIP/1001-00000001","state":"Up","caller":{"number":"1001"},"dialplan":{"app_name":"` + app + `","app_data":"` + data + `"}}`
}

const movedHere = "POST /channels/sup-a/move?app=callwarden-b&appArgs=monitor%2Clisten%2C2001"

func shortStrandedGrace(t *testing.T) {
	old := strandedGrace
	strandedGrace = 20 * time.Millisecond
	t.Cleanup(func() { strandedGrace = old })
}

// siblingB starts daemon b (application callwarden-b, sibling callwarden-a)
// against f, changed by change, and returns the event connection.
func siblingB(t *testing.T, f *fakeARI, change func(*Options)) {
	t.Helper()
	startAdapterWith(t, f, mustExampleSnapshotFunc(t), nil, nil, func(o *Options) {
		o.App, o.Siblings = "callwarden-b", []string{"callwarden-a"}
		if change != nil {
			change(o)
		}
	})
}

func TestARequestStrandedInADeadSiblingsApplicationIsMovedHereToBeDecided(t *testing.T) {
	shortStrandedGrace(t)
	f := newFakeARI(t)
	siblingB(t, f, nil)
	conn := <-f.conn
	f.answer(http.MethodGet, "/channels/sup-a", http.StatusOK, listedInStasis("Stasis", "callwarden-a,monitor,listen,2001"))
	f.answer(http.MethodGet, "/applications/callwarden-a", http.StatusNotFound, `{"message":"Application not found"}`)
	f.send(conn, strandedDialplan)
	waitFor(t, "the stranded request moved into callwarden-b with its arguments", func() bool { return f.called(movedHere) })
	// Asked twice, strandedGrace apart, before moving it.
	if n := f.count("GET /applications/callwarden-a"); n != 2 {
		t.Errorf("the sibling's registration asked %d times, want 2", n)
	}
	// Seen again (the take-over's listing): moved once.
	f.send(conn, strandedDialplan)
	time.Sleep(10 * strandedGrace)
	if n := f.count(movedHere); n != 1 {
		t.Errorf("moved %d times, want once", n)
	}
}

func TestARequestInASiblingsApplicationIsLeftAloneUnlessStranded(t *testing.T) {
	// A lease daemon c holds (for a minute).
	heldLease := memory.NewWatchdog()
	if _, err := heldLease.AcquireLease(context.Background(), "watchdog:asterisk:pbx1", "c", time.Minute); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		setup  func(f *fakeARI)
		change func(*Options)
	}{
		{name: "the sibling's daemon is registered", setup: func(f *fakeARI) {
			f.answer(http.MethodGet, "/applications/callwarden-a", http.StatusOK, `{"name":"callwarden-a"}`)
		}},
		{name: "the request is bridged: the sibling's session", setup: func(f *fakeARI) {
			f.answer(http.MethodGet, "/bridges", http.StatusOK, `[{"id":"cw-callwarden-a-bridge-0123456789abcdef","channels":["sup-a","snoop-a"]}]`)
		}},
		{name: "the request moved on in the dialplan", setup: func(f *fakeARI) {
			f.answer(http.MethodGet, "/channels/sup-a", http.StatusOK, listedInStasis("Hangup", ""))
		}},
		{name: "the request hung up", setup: func(f *fakeARI) {
			f.answer(http.MethodGet, "/channels/sup-a", http.StatusNotFound, `{"message":"Channel not found"}`)
		}},
		{name: "another daemon holds the watchdog lease", change: func(o *Options) {
			o.PBX, o.Instance, o.Shared, o.LeaseTTL, o.LeaseRenew = "pbx1", "b", heldLease, time.Minute, 10*time.Millisecond
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			shortStrandedGrace(t)
			f := newFakeARI(t)
			f.answer(http.MethodGet, "/channels/sup-a", http.StatusOK, listedInStasis("Stasis", "callwarden-a,monitor,listen,2001"))
			f.answer(http.MethodGet, "/applications/callwarden-a", http.StatusNotFound, `{"message":"Application not found"}`)
			if tc.setup != nil {
				tc.setup(f)
			}
			siblingB(t, f, tc.change)
			conn := <-f.conn
			f.send(conn, strandedDialplan)
			time.Sleep(10 * strandedGrace)
			if f.called("POST /channels/sup-a/move") {
				t.Fatal("a request that is not stranded was moved away from its sibling")
			}
			if f.called("DELETE /channels/sup-a") {
				t.Fatal("a sibling's request was hung up")
			}
		})
	}
}

func TestARequestInAnUnrelatedApplicationIsNeverMoved(t *testing.T) {
	shortStrandedGrace(t)
	f := newFakeARI(t)
	f.answer(http.MethodGet, "/channels/sup-a", http.StatusOK, listedInStasis("Stasis", "someone-else,monitor,listen,2001"))
	siblingB(t, f, nil)
	conn := <-f.conn
	f.send(conn, strings.Replace(strandedDialplan, "callwarden-a,", "someone-else,", 1))
	time.Sleep(10 * strandedGrace)
	if f.called("GET /channels/sup-a") || f.called("POST /channels/sup-a/move") {
		t.Fatal("a channel in another application's Stasis was looked at or moved")
	}
}

func TestTheDaemonTakingOverTheLeaseMovesWhatTheDeadHolderStranded(t *testing.T) {
	shortStrandedGrace(t)
	const ttl = 300 * time.Millisecond
	store := memory.NewWatchdog()
	// Daemon a held the lease and died with sup-a in its application; b
	// never saw sup-a enter it (no event): only its take-over's listing.
	if cur, err := store.AcquireLease(context.Background(), "watchdog:asterisk:pbx1", "a", ttl); err != nil || cur != "a" {
		t.Fatalf("AcquireLease = %q, %v", cur, err)
	}
	f := newFakeARI(t)
	listed := listedInStasis("Stasis", "callwarden-a,monitor,listen,2001")
	f.answer(http.MethodGet, "/channels", http.StatusOK, "["+listed+"]")
	f.answer(http.MethodGet, "/channels/sup-a", http.StatusOK, listed)
	f.answer(http.MethodGet, "/applications/callwarden-a", http.StatusNotFound, `{"message":"Application not found"}`)
	siblingB(t, f, func(o *Options) {
		o.PBX, o.Instance, o.Shared, o.LeaseTTL, o.LeaseRenew = "pbx1", "b", store, ttl, 50*time.Millisecond
		o.Watchdog = WatchdogEnforce
	})
	waitFor(t, "b, taking over the lease, to move the stranded request", func() bool { return f.called(movedHere) })
}

func TestARequestALiveSiblingHeldIsMovedOnceTheSiblingDies(t *testing.T) {
	shortStrandedGrace(t)
	f := newFakeARI(t)
	f.answer(http.MethodGet, "/channels/sup-a", http.StatusOK, listedInStasis("Stasis", "callwarden-a,monitor,listen,2001"))
	f.answer(http.MethodGet, "/applications/callwarden-a", http.StatusOK, `{"name":"callwarden-a"}`)
	siblingB(t, f, nil)
	conn := <-f.conn
	f.send(conn, strandedDialplan)
	waitFor(t, "b to look at the sibling twice", func() bool { return f.count("GET /applications/callwarden-a") >= 2 })
	if f.called("POST /channels/sup-a/move") {
		t.Fatal("moved while its sibling was registered")
	}
	// The sibling dies, its request still in its application.
	f.answer(http.MethodGet, "/applications/callwarden-a", http.StatusNotFound, `{"message":"Application not found"}`)
	waitFor(t, "the request moved once its sibling died", func() bool { return f.called(movedHere) })
}

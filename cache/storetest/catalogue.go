package storetest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/callwarden/callwarden/enforce"
)

// RunRecordingCatalogue runs the contract of enforce.RecordingCatalogue;
// newStore returns an empty store of its own for each subtest.
func RunRecordingCatalogue(t *testing.T, newStore func(t *testing.T) enforce.RecordingCatalogue) {
	t0 := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	rec := func(id, target, queue string, started time.Time) enforce.Recording {
		return enforce.Recording{ID: id, Name: "callwarden-" + id, Target: target, Queue: queue, StartedBy: "alice",
			StartedAt: started, State: enforce.RecordingStopped, StoppedAt: started.Add(time.Minute)}
	}
	// fill saves recordings 1..6: agents a1/a2 alternately, queues sales
	// (1-3) and support (4-6), a minute apart; 3 and 4 start in the same
	// millisecond, so the id breaks the tie.
	fill := func(t *testing.T, s enforce.RecordingCatalogue) {
		t.Helper()
		for i, r := range []enforce.Recording{
			rec("100000000001", "a1", "sales", t0),
			rec("100000000002", "a2", "sales", t0.Add(time.Minute)),
			rec("100000000003", "a1", "sales", t0.Add(2*time.Minute)),
			rec("100000000004", "a2", "support", t0.Add(2*time.Minute)),
			rec("100000000005", "a1", "support", t0.Add(4*time.Minute)),
			rec("100000000006", "a2", "support", t0.Add(5*time.Minute)),
		} {
			if i == 0 {
				r.State, r.StoppedAt = enforce.RecordingActive, time.Time{}
			}
			mustSaveRecording(t, s, r)
		}
	}
	ids := func(rs []enforce.Recording) []string {
		out := make([]string, len(rs))
		for i, r := range rs {
			out[i] = r.ID[len(r.ID)-1:]
		}
		return out
	}
	list := func(t *testing.T, s enforce.RecordingCatalogue, q enforce.RecordingQuery) []string {
		t.Helper()
		got, err := s.ListRecordings(testContext(t), q)
		if err != nil {
			t.Fatalf("ListRecordings(%+v): %v", q, err)
		}
		return ids(got)
	}
	want := func(t *testing.T, what string, got []string, want ...string) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}

	t.Run("every recording is listed newest first, ties by id", func(t *testing.T) {
		s := newStore(t)
		fill(t, s)
		want(t, "all", list(t, s, enforce.RecordingQuery{Limit: 10}), "6", "5", "4", "3", "2", "1")
		want(t, "oldest first", list(t, s, enforce.RecordingQuery{Limit: 10, Oldest: true}), "1", "2", "3", "4", "5", "6")
	})
	t.Run("an agent's and a queue's indexes hold only theirs", func(t *testing.T) {
		s := newStore(t)
		fill(t, s)
		want(t, "agent a1", list(t, s, enforce.RecordingQuery{Index: enforce.RecordingIndex{Agent: "a1"}, Limit: 10}), "5", "3", "1")
		want(t, "queue support", list(t, s, enforce.RecordingQuery{Index: enforce.RecordingIndex{Queue: "support"}, Limit: 10}), "6", "5", "4")
		want(t, "unknown queue", list(t, s, enforce.RecordingQuery{Index: enforce.RecordingIndex{Queue: "hr"}, Limit: 10}))
	})
	t.Run("pages follow one another without gaps or repeats", func(t *testing.T) {
		s := newStore(t)
		fill(t, s)
		for _, oldest := range []bool{false, true} {
			var all []string
			q := enforce.RecordingQuery{Limit: 4, Oldest: oldest}
			for range 4 {
				page, err := s.ListRecordings(testContext(t), q)
				if err != nil {
					t.Fatal(err)
				}
				if len(page) == 0 {
					break
				}
				all = append(all, ids(page)...)
				q.After, _ = enforce.CatalogueKey(&page[len(page)-1])
			}
			w := []string{"6", "5", "4", "3", "2", "1"}
			if oldest {
				slices.Reverse(w)
			}
			want(t, "pages", all, w...)
		}
	})
	t.Run("from is inclusive and to exclusive on the start time", func(t *testing.T) {
		s := newStore(t)
		fill(t, s)
		q := enforce.RecordingQuery{From: t0.Add(time.Minute), To: t0.Add(4 * time.Minute), Limit: 10}
		want(t, "window", list(t, s, q), "4", "3", "2")
		q.Oldest = true
		want(t, "window oldest first", list(t, s, q), "2", "3", "4")
		q.Oldest, q.After = false, "0000000000000:x" // before every key: nothing left
		want(t, "window after the oldest", list(t, s, q))
	})
	t.Run("a recording saved again moves with its queue and agent", func(t *testing.T) {
		s := newStore(t)
		fill(t, s)
		r, err := s.Recording(testContext(t), "100000000006")
		if err != nil {
			t.Fatal(err)
		}
		r.Queue, r.Target = "sales", "a1"
		mustSaveRecording(t, s, r)
		want(t, "queue sales", list(t, s, enforce.RecordingQuery{Index: enforce.RecordingIndex{Queue: "sales"}, Limit: 10}), "6", "3", "2", "1")
		want(t, "queue support", list(t, s, enforce.RecordingQuery{Index: enforce.RecordingIndex{Queue: "support"}, Limit: 10}), "5", "4")
		want(t, "agent a2", list(t, s, enforce.RecordingQuery{Index: enforce.RecordingIndex{Agent: "a2"}, Limit: 10}), "4", "2")
		want(t, "all", list(t, s, enforce.RecordingQuery{Limit: 10}), "6", "5", "4", "3", "2", "1")
	})
	t.Run("a deleted recording is gone from the store and every index", func(t *testing.T) {
		s := newStore(t)
		fill(t, s)
		ctx := testContext(t)
		if err := s.DeleteRecording(ctx, "100000000001"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Recording(ctx, "100000000001"); !errors.Is(err, enforce.ErrNotFound) {
			t.Errorf("Recording after delete: %v, want ErrNotFound", err)
		}
		if _, err := s.ActiveRecording(ctx, "a1"); !errors.Is(err, enforce.ErrNotFound) {
			t.Errorf("ActiveRecording after delete: %v, want ErrNotFound", err)
		}
		want(t, "all", list(t, s, enforce.RecordingQuery{Limit: 10}), "6", "5", "4", "3", "2")
		want(t, "agent a1", list(t, s, enforce.RecordingQuery{Index: enforce.RecordingIndex{Agent: "a1"}, Limit: 10}), "5", "3")
		if err := s.DeleteRecording(ctx, "100000000001"); !errors.Is(err, enforce.ErrNotFound) {
			t.Errorf("second delete: %v, want ErrNotFound", err)
		}
	})
	t.Run("a recording without a start time is kept but not listed", func(t *testing.T) {
		s := newStore(t)
		mustSaveRecording(t, s, enforce.Recording{ID: "100000000009", Name: "n", StartedBy: "alice", State: enforce.RecordingActive})
		want(t, "all", list(t, s, enforce.RecordingQuery{Limit: 10}))
		if _, err := s.Recording(testContext(t), "100000000009"); err != nil {
			t.Errorf("Recording: %v", err)
		}
	})
}

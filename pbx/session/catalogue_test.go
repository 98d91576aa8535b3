package session

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/callwarden/callwarden/cache/memory"
	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/session/sessiontest"
)

// upkeepFixture is an Upkeep over a memory catalogue and PBX audio, at
// t0, keeping recordings 90 days.
func upkeepFixture(t *testing.T) (*Upkeep, *memory.Recordings, *sessiontest.Audio, *sessiontest.AuditLog) {
	t.Helper()
	cat, audio, log := memory.NewRecordings(), &sessiontest.Audio{}, &sessiontest.AuditLog{}
	u := &Upkeep{Catalogue: cat, Audio: audio, Foreign: audio, Audit: log, Retain: 90 * 24 * time.Hour, Batch: 3, PBX: "pbx1",
		Now: func() time.Time { return t0 }}
	return u, cat, audio, log
}

// catalogue saves a recording started ago before t0, with audio.
func catalogue(t *testing.T, cat *memory.Recordings, audio *sessiontest.Audio, id string, ago time.Duration, state enforce.RecordingState) enforce.Recording {
	t.Helper()
	rec := enforce.Recording{ID: id, Name: "callwarden-" + id, Queue: "sales", Target: "agent1", StartedBy: "alice",
		StartedAt: t0.Add(-ago), State: state, Format: "wav"}
	if err := cat.SaveRecording(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	audio.Put(rec.Name, []byte("audio"))
	return rec
}

func TestRetentionDeletesExpiredRecordingsInBoundedBatches(t *testing.T) {
	u, cat, audio, log := upkeepFixture(t)
	ctx := context.Background()
	day := 24 * time.Hour
	for i := range 5 {
		catalogue(t, cat, audio, fmt.Sprintf("10000000000%d", i), time.Duration(100+i)*day, enforce.RecordingStopped)
	}
	inProgress := catalogue(t, cat, audio, "200000000000", 120*day, enforce.RecordingPaused)
	fresh := catalogue(t, cat, audio, "300000000000", 89*day, enforce.RecordingStopped)

	n, err := u.Sweep(ctx)
	if err != nil || n != 3 {
		t.Fatalf("first sweep deleted %d (%v), want a batch of 3", n, err)
	}
	if n, err = u.Sweep(ctx); err != nil || n != 2 {
		t.Fatalf("second sweep deleted %d (%v), want the 2 left", n, err)
	}
	if n, err = u.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("third sweep deleted %d (%v), want none", n, err)
	}
	for i := range 5 {
		id := fmt.Sprintf("10000000000%d", i)
		if _, err := cat.Recording(ctx, id); !errors.Is(err, enforce.ErrNotFound) || audio.Has("callwarden-"+id) {
			t.Errorf("expired %s: metadata %v, audio %v; want both gone", id, err, audio.Has("callwarden-"+id))
		}
	}
	for _, kept := range []enforce.Recording{inProgress, fresh} {
		if _, err := cat.Recording(ctx, kept.ID); err != nil || !audio.Has(kept.Name) {
			t.Errorf("%s was deleted: %v", kept.ID, err)
		}
	}
	recs := log.All()
	if len(recs) != 5 {
		t.Fatalf("%d audit records, want one per deletion: %+v", len(recs), recs)
	}
	if r := recs[0]; r.Source != SourceRetention || r.Action != "recording.delete" || r.Reason != ReasonExpired ||
		r.Recording != "100000000004" || r.Queue != "sales" || r.Target != "agent1" {
		t.Errorf("first record %+v, want the oldest recording's deletion by the retention", r)
	}
}

func TestRetentionOffKeepsEverything(t *testing.T) {
	u, cat, audio, _ := upkeepFixture(t)
	u.Retain = 0
	catalogue(t, cat, audio, "100000000000", 10000*24*time.Hour, enforce.RecordingStopped)
	if n, err := u.Sweep(context.Background()); n != 0 || err != nil {
		t.Errorf("Sweep = %d, %v; want nothing deleted", n, err)
	}
}

func TestForeignRecordingsAreCataloguedOnce(t *testing.T) {
	u, cat, audio, _ := upkeepFixture(t)
	ctx := context.Background()
	ours := catalogue(t, cat, audio, "100000000000", time.Hour, enforce.RecordingStopped)
	audio.Put("mixmonitor-2001-20261122", []byte("theirs"))
	for range 2 {
		if n, err := u.ImportForeign(ctx); err != nil || n > 1 {
			t.Fatalf("ImportForeign = %d, %v", n, err)
		}
	}
	recs, err := cat.ListRecordings(ctx, enforce.RecordingQuery{Limit: 10})
	if err != nil || len(recs) != 2 {
		t.Fatalf("catalogue holds %+v, %v; want ours and one foreign", recs, err)
	}
	f := recs[0]
	if f.ID == ours.ID {
		f = recs[1]
	}
	if !f.Foreign || f.Name != "mixmonitor-2001-20261122" || f.ID != ForeignID(f.Name) || f.State != enforce.RecordingStopped || !f.StartedAt.Equal(t0) {
		t.Errorf("foreign recording %+v", f)
	}
}

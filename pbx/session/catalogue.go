package session

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/callwarden/callwarden/enforce"
)

// The audit vocabulary of the catalogue's upkeep.
const (
	// SourceRetention is the Source of the records of recordings the
	// retention sweep deleted.
	SourceRetention = "retention"
	// ReasonExpired is their reason: the recording outlived the retention.
	ReasonExpired = "retention_expired"
)

// The defaults of Upkeep.
const (
	defaultSweepInterval = time.Minute
	defaultSweepBatch    = 100
)

// Upkeep looks after the recording catalogue in the background: each
// Interval it catalogues the recordings the PBX stores that callwarden did
// not start (when Foreign is set), then deletes at most Batch recordings
// that started more than Retain ago, audio and metadata, each audited.
type Upkeep struct {
	Catalogue enforce.RecordingCatalogue
	Audio     enforce.RecordingAudio
	// Foreign, when set, lists the PBX's stored recordings to catalogue
	// those callwarden does not know of (Recording.Foreign).
	Foreign enforce.ForeignLister
	// Audit receives a record of each deletion (SourceRetention).
	Audit enforce.Auditor
	// Retain is how long a recording is kept after its start; 0 keeps
	// recordings forever.
	Retain   time.Duration
	Batch    int           // default 100
	Interval time.Duration // default 1m
	PBX      string
	Now      func() time.Time
	Logger   *zap.Logger

	// after is where the next sweep goes on from (a CatalogueKey): a
	// sweep that stops at its bound leaves the rest to the next one, so
	// recordings passed over (in progress, or of a PBX this daemon does
	// not reach) cannot hold every sweep back. Run and Sweep are not
	// called concurrently.
	after string
}

func (u *Upkeep) now() time.Time {
	if u.Now == nil {
		return time.Now().UTC()
	}
	return u.Now().UTC()
}

func (u *Upkeep) log() *zap.Logger {
	if u.Logger == nil {
		return zap.NewNop()
	}
	return u.Logger
}

// Run sweeps every Interval until ctx is done; failures are logged and the
// next sweep tries again. It returns nil when ctx ends.
func (u *Upkeep) Run(ctx context.Context) error {
	interval := u.Interval
	if interval <= 0 {
		interval = defaultSweepInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if u.Foreign != nil {
			if n, err := u.ImportForeign(ctx); err != nil {
				u.log().Warn("recording catalogue: foreign recordings not imported", zap.Error(err))
			} else if n > 0 {
				u.log().Info("recording catalogue: foreign recordings catalogued", zap.Int("count", n))
			}
		}
		if u.Retain > 0 {
			if n, err := u.Sweep(ctx); err != nil {
				u.log().Warn("recording retention: sweep failed", zap.Int("deleted", n), zap.Error(err))
			} else if n > 0 {
				u.log().Info("recording retention: expired recordings deleted", zap.Int("count", n))
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Sweep deletes at most Batch recordings that started more than Retain
// ago, oldest first, from the PBX and the catalogue, and audits each
// deletion. Recordings still in progress are passed over. It reads at most
// twice Batch recordings, so one sweep stays bounded whatever the
// catalogue holds; it returns how many it deleted and the first error that
// stopped it.
func (u *Upkeep) Sweep(ctx context.Context) (int, error) {
	if u.Retain <= 0 {
		return 0, nil
	}
	batch := u.Batch
	if batch <= 0 {
		batch = defaultSweepBatch
	}
	now := u.now()
	q := enforce.RecordingQuery{To: now.Add(-u.Retain), Limit: batch, Oldest: true, After: u.after}
	deleted, read := 0, 0
	for deleted < batch && read < 2*batch {
		recs, err := u.Catalogue.ListRecordings(ctx, q)
		if err != nil {
			return deleted, fmt.Errorf("list expired recordings: %w", err)
		}
		for _, rec := range recs {
			read++
			q.After, _ = enforce.CatalogueKey(&rec)
			u.after = q.After
			if rec.State != enforce.RecordingStopped {
				continue
			}
			err := enforce.DeleteRecording(ctx, u.Catalogue, u.Audio, rec)
			if errors.Is(err, enforce.ErrNotFound) {
				// Audio this daemon cannot reach (another PBX's): left to
				// a daemon that does.
				u.log().Debug("recording retention: passed over", zap.String("recording", rec.ID), zap.Error(err))
				continue
			}
			if err != nil {
				return deleted, err
			}
			deleted++
			u.audit(ctx, rec, now)
			if deleted == batch {
				break
			}
		}
		if len(recs) < q.Limit {
			u.after = "" // the end of the expired ones: start over next time
			break
		}
	}
	return deleted, nil
}

// audit records the deletion of rec by the retention.
func (u *Upkeep) audit(ctx context.Context, rec enforce.Recording, now time.Time) {
	if u.Audit == nil {
		return
	}
	err := u.Audit.Audit(ctx, enforce.AuditRecord{
		Time: now, Source: SourceRetention, User: SourceRetention, Action: enforce.RecordingDelete.String(),
		Target: rec.Target, Queue: rec.Queue, Decision: "allow", Reason: ReasonExpired, PBX: rec.PBX, Recording: rec.ID,
		Outcome: enforce.OutcomeEnforced,
		Detail:  fmt.Sprintf("started %s, retained %s: deleted from the PBX and the catalogue", rec.StartedAt.Format(time.RFC3339), u.Retain),
	})
	if err != nil {
		u.log().Error("recording retention: audit write failed", zap.String("recording", rec.ID), zap.Error(err))
	}
}

// ImportForeign catalogues the PBX's stored recordings that callwarden
// did not start, marked foreign: stopped, started (for retention and
// listing) when found, with neither target nor queue, so that only grants
// that reach every queue and agent reach them. Its own recordings
// ("callwarden-<id>") are left alone. It returns how many it catalogued.
func (u *Upkeep) ImportForeign(ctx context.Context) (int, error) {
	stored, err := u.Foreign.StoredRecordings(ctx)
	if err != nil {
		return 0, err
	}
	now, n := u.now(), 0
	for _, st := range stored {
		if id, ours := strings.CutPrefix(st.Name, "callwarden-"); ours && enforce.CheckID(id) == nil {
			continue
		}
		id := ForeignID(st.Name)
		switch old, err := u.Catalogue.Recording(ctx, id); {
		case err == nil:
			if old.Name != st.Name {
				u.log().Warn("recording catalogue: two stored recordings share a foreign id; the second is not catalogued",
					zap.String("id", id), zap.String("name", st.Name), zap.String("catalogued", old.Name))
			}
			continue
		case !errors.Is(err, enforce.ErrNotFound):
			return n, err
		}
		rec := enforce.Recording{ID: id, Name: st.Name, Format: st.Format, PBX: u.PBX, Foreign: true,
			StartedAt: now, StoppedAt: now, State: enforce.RecordingStopped}
		if err := u.Catalogue.SaveRecording(ctx, rec); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// ForeignID is the catalogue id of the PBX's recording name: "9" and 11
// digits of its hash, the same on every daemon and every sweep, so that
// one stored recording is catalogued once.
func ForeignID(name string) string {
	h := fnv.New64a()
	_, _ = h.Write([]byte(name))
	return fmt.Sprintf("9%011d", h.Sum64()%100_000_000_000)
}

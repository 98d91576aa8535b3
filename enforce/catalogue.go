// This file holds the recording catalogue: the indexes a store keeps over
// recording metadata so that a page of recordings is found without reading
// them all, and the audio of a recording where the PBX keeps it.

package enforce

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// RecordingIndex names one index of the catalogue: every recording (the
// zero value), those of one agent (the recording's Target) or those of one
// queue.
type RecordingIndex struct {
	Agent, Queue string
}

// String names the index for errors.
func (ix RecordingIndex) String() string {
	switch {
	case ix.Agent != "":
		return "agent " + ix.Agent
	case ix.Queue != "":
		return "queue " + ix.Queue
	}
	return "all recordings"
}

// RecordingQuery is one page of one index, in the catalogue's order:
// newest first (StartedAt, then ID, both descending), or oldest first.
type RecordingQuery struct {
	Index RecordingIndex
	// From (inclusive) and To (exclusive) bound StartedAt; zero is open.
	From, To time.Time
	// After is the CatalogueKey of the last recording of the previous page
	// (exclusive); "" starts at the first.
	After string
	// Limit is the most recordings returned; it must be positive.
	Limit int
	// Oldest lists oldest first (the retention sweep); the default is
	// newest first.
	Oldest bool
}

// RecordingCatalogue is a recording store that lists and deletes the
// recordings it holds, through indexes by start time (every recording, per
// agent and per queue). A recording is indexed once it has a StartedAt.
type RecordingCatalogue interface {
	RecordingStore
	// ListRecordings returns up to q.Limit recordings of q.Index in the
	// catalogue's order (RecordingQuery), from after q.After. Errors:
	// ErrUnavailable, ErrCorrupt.
	ListRecordings(ctx context.Context, q RecordingQuery) ([]Recording, error)
	// DeleteRecording removes the recording's metadata and its entries in
	// every index. Errors: ErrNotFound, ErrUnavailable.
	DeleteRecording(ctx context.Context, id string) error
}

// catalogueKeyDigits is the width of the start time, in unix
// milliseconds, at the head of a CatalogueKey: enough until the year 2286.
const catalogueKeyDigits = 13

// CatalogueKey is rec's place in the catalogue's order: its start time in
// unix milliseconds, zero-padded, then its id, so that keys sort as the
// recordings do. ok is false for a recording that has no start time (before
// 1970 or unset): it is not indexed.
func CatalogueKey(rec *Recording) (key string, ok bool) {
	ms := rec.StartedAt.UnixMilli()
	if rec.StartedAt.IsZero() || ms < 0 {
		return "", false
	}
	return catalogueTime(ms) + ":" + rec.ID, true
}

// CatalogueBound is the key every recording started at t sorts at or after,
// and every one started before t sorts before (RecordingQuery.From, To).
func CatalogueBound(t time.Time) string {
	return catalogueTime(max(t.UnixMilli(), 0))
}

func catalogueTime(ms int64) string {
	s := strconv.FormatInt(ms, 10)
	return strings.Repeat("0", max(catalogueKeyDigits-len(s), 0)) + s
}

// ParseCatalogueKey checks a key given back by a client (a cursor) and
// returns it; the id part must be a valid id.
func ParseCatalogueKey(s string) (string, error) {
	ms, id, ok := strings.Cut(s, ":")
	if !ok || len(ms) != catalogueKeyDigits || strings.Trim(ms, "0123456789") != "" {
		return "", fmt.Errorf("cursor %s: not a cursor this API returned", printable(s))
	}
	if err := CheckID(id); err != nil {
		return "", fmt.Errorf("cursor: %w", err)
	}
	return s, nil
}

// Audio is a recording's audio, opened for reading: a seekable body (so a
// client's range requests are served from it), its size, content type and
// modification time. Close releases it.
type Audio struct {
	io.ReadSeekCloser
	Size        int64
	ContentType string
	ModTime     time.Time
}

// RecordingAudio reaches recordings' audio where the PBX keeps it:
// Asterisk's stored recordings through ARI, a directory shared with
// FreeSWITCH.
type RecordingAudio interface {
	// OpenAudio opens rec's audio. Errors: ErrNotFound (the PBX holds no
	// audio for it), ErrUnavailable.
	OpenAudio(ctx context.Context, rec Recording) (Audio, error)
	// DeleteAudio removes rec's audio from the PBX; audio already gone is
	// not an error. Errors: ErrUnavailable.
	DeleteAudio(ctx context.Context, rec Recording) error
}

// ForeignLister is a RecordingAudio that lists the recordings the PBX
// stores, so that those callwarden did not start are catalogued too
// (Recording.Foreign).
type ForeignLister interface {
	// StoredRecordings returns the PBX's names and formats of every stored
	// recording. Errors: ErrUnavailable.
	StoredRecordings(ctx context.Context) ([]Recording, error)
}

// AudioContentType is the MIME type of audio in the given format (a file
// extension as the PBX names it), application/octet-stream when unknown.
func AudioContentType(format string) string {
	switch strings.ToLower(format) {
	case "wav", "wav16":
		return "audio/wav"
	case "gsm":
		return "audio/x-gsm"
	case "ulaw", "ul", "mu", "pcm":
		return "audio/basic"
	case "mp3":
		return "audio/mpeg"
	case "ogg", "oga":
		return "audio/ogg"
	case "sln", "raw":
		return "audio/L16"
	}
	return "application/octet-stream"
}

// RecordingReach returns the catalogue indexes that hold every recording
// user's grants of action could allow: the queues of the grants that name
// queues, else the agents of those that name agents. all is true when a
// grant names neither (or `all`), so only the whole catalogue covers it.
// It narrows what is read, never what is allowed: each recording found is
// still decided. A user with no profile reaches nothing.
func (s *Snapshot) RecordingReach(user string, action Action) (ixs []RecordingIndex, all bool) {
	pr, ok := s.ProfileOf(user)
	if !ok {
		return nil, false
	}
	u, _ := s.User(user)
	seen := make(map[RecordingIndex]bool)
	add := func(ix RecordingIndex) {
		if !seen[ix] {
			seen[ix] = true
			ixs = append(ixs, ix)
		}
	}
	for _, g := range pr.Grants {
		if !g.Actions.Has(action) {
			continue
		}
		queues, agents := g.Scopes[DimQueues], g.Scopes[DimAgents]
		switch {
		case queues.Kind == ScopeList || queues.Kind == ScopeAssigned:
			vals := queues.Values
			if queues.Kind == ScopeAssigned {
				vals = u.Queues
			}
			for _, q := range vals {
				add(RecordingIndex{Queue: q})
			}
		case agents.Kind == ScopeList || agents.Kind == ScopeAssigned || agents.Kind == ScopeSelf:
			vals := agents.Values
			switch agents.Kind {
			case ScopeAssigned:
				vals = u.Agents
			case ScopeSelf:
				vals = []string{user}
			}
			for _, a := range vals {
				add(RecordingIndex{Agent: a})
			}
		default:
			return nil, true
		}
	}
	return ixs, false
}

// DeleteRecording removes rec's audio from the PBX, then its metadata from
// the catalogue: metadata never outlives its audio the other way round,
// and a failed audio delete leaves both. Metadata already gone is not an
// error.
func DeleteRecording(ctx context.Context, cat RecordingCatalogue, audio RecordingAudio, rec Recording) error {
	if err := audio.DeleteAudio(ctx, rec); err != nil {
		return fmt.Errorf("delete the audio of recording %s: %w", rec.ID, err)
	}
	if err := cat.DeleteRecording(ctx, rec.ID); err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("delete recording %s from the catalogue: %w", rec.ID, err)
	}
	return nil
}

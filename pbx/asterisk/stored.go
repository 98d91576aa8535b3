package asterisk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/callwarden/callwarden/enforce"
)

// defaultAudioTimeout bounds the download of one stored recording from ARI.
const defaultAudioTimeout = 5 * time.Minute

// StoredAudio reaches the audio of Asterisk's stored recordings through
// ARI (/recordings/stored): enforce.RecordingAudio and
// enforce.ForeignLister.
//
// ARI's GET /recordings/stored/{name}/file answers the whole file and
// honours no Range header, so OpenAudio copies it to a temporary file
// (in TempDir) which the caller serves with range requests
// (http.ServeContent) and which Close removes. Reading the spool directory
// directly would need the daemon to share Asterisk's filesystem; through
// ARI it needs nothing but the ARI user it already has.
type StoredAudio struct {
	rest *rest
	// Format is the format callwarden records in, for a recording whose
	// metadata does not say.
	Format string
	// TempDir holds the copies being served ("" : os.TempDir()).
	TempDir string
	// Timeout bounds one download (default 5m).
	Timeout time.Duration
}

var (
	_ enforce.RecordingAudio = (*StoredAudio)(nil)
	_ enforce.ForeignLister  = (*StoredAudio)(nil)
)

// StoredAudio returns the stored recordings of the adapter's Asterisk,
// through its ARI client.
func (a *Adapter) StoredAudio() *StoredAudio {
	return &StoredAudio{rest: a.rest, Format: a.o.RecordingFormat}
}

// unavailable classifies an ARI error: a 404 is enforce.ErrNotFound, any
// other failure to reach or use ARI enforce.ErrUnavailable.
func unavailable(err error) error {
	if errors.Is(err, ErrNotFound) {
		return fmt.Errorf("%w: %w", enforce.ErrNotFound, err)
	}
	return fmt.Errorf("%w: %w", enforce.ErrUnavailable, err)
}

// OpenAudio implements enforce.RecordingAudio: rec's stored recording,
// copied from ARI to a temporary file. Errors: enforce.ErrNotFound (ARI
// has no such stored recording), enforce.ErrUnavailable.
func (s *StoredAudio) OpenAudio(ctx context.Context, rec enforce.Recording) (enforce.Audio, error) {
	f, err := os.CreateTemp(s.TempDir, "callwarden-audio-*")
	if err != nil {
		return enforce.Audio{}, fmt.Errorf("spool recording %s: %w", rec.ID, err)
	}
	ok := false
	defer func() {
		if !ok {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	limit := s.Timeout
	if limit <= 0 {
		limit = defaultAudioTimeout
	}
	ctype, err := s.rest.Download(ctx, "/recordings/stored/"+esc(rec.Name)+"/file", f, limit)
	if err != nil {
		return enforce.Audio{}, unavailable(fmt.Errorf("recording %s: %w", rec.ID, err))
	}
	st, err := f.Stat()
	if err != nil {
		return enforce.Audio{}, fmt.Errorf("spool recording %s: %w", rec.ID, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return enforce.Audio{}, fmt.Errorf("spool recording %s: %w", rec.ID, err)
	}
	format := rec.Format
	if format == "" {
		format = s.Format
	}
	if ct := enforce.AudioContentType(format); ct != "application/octet-stream" || ctype == "" {
		ctype = ct
	}
	ok = true
	return enforce.Audio{ReadSeekCloser: spooled{f}, Size: st.Size(), ContentType: ctype, ModTime: rec.StoppedAt}, nil
}

// spooled is a temporary copy removed when closed.
type spooled struct{ *os.File }

func (s spooled) Close() error {
	err := s.File.Close()
	return errors.Join(err, os.Remove(s.Name()))
}

// DeleteAudio implements enforce.RecordingAudio: DELETE
// /recordings/stored/{name}; one already gone is not an error. Errors:
// enforce.ErrUnavailable.
func (s *StoredAudio) DeleteAudio(ctx context.Context, rec enforce.Recording) error {
	err := s.rest.do(ctx, http.MethodDelete, "/recordings/stored/"+esc(rec.Name), nil, nil, nil)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return unavailable(fmt.Errorf("delete stored recording %s: %w", rec.Name, err))
	}
	return nil
}

// StoredRecordings implements enforce.ForeignLister: GET
// /recordings/stored, each as a Recording with its Name and Format.
// Errors: enforce.ErrUnavailable.
func (s *StoredAudio) StoredRecordings(ctx context.Context) ([]enforce.Recording, error) {
	var stored []struct {
		Name   string `json:"name"`
		Format string `json:"format"`
	}
	if err := s.rest.do(ctx, http.MethodGet, "/recordings/stored", nil, nil, &stored); err != nil {
		return nil, unavailable(fmt.Errorf("list stored recordings: %w", err))
	}
	out := make([]enforce.Recording, len(stored))
	for i, st := range stored {
		out[i] = enforce.Recording{Name: st.Name, Format: st.Format}
	}
	return out, nil
}

// PBX names this Asterisk in the metadata of the recordings it makes
// (Recording.PBX).
func (a *Adapter) PBX() string { return a.o.PBX }

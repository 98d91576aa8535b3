package sessiontest

import (
	"bytes"
	"context"
	"fmt"
	"sync"

	"github.com/callwarden/callwarden/enforce"
)

// Audio is a PBX's store of recording audio in memory, by recording name:
// an enforce.RecordingAudio and enforce.ForeignLister. The zero value is
// empty.
type Audio struct {
	mu    sync.Mutex
	files map[string][]byte
}

// Put stores b as the audio of the recording named name.
func (a *Audio) Put(name string, b []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.files == nil {
		a.files = make(map[string][]byte)
	}
	a.files[name] = b
}

// Has reports whether the recording named name has audio.
func (a *Audio) Has(name string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, ok := a.files[name]
	return ok
}

// OpenAudio implements enforce.RecordingAudio.
func (a *Audio) OpenAudio(_ context.Context, rec enforce.Recording) (enforce.Audio, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	b, ok := a.files[rec.Name]
	if !ok {
		return enforce.Audio{}, fmt.Errorf("audio %s: %w", rec.Name, enforce.ErrNotFound)
	}
	return enforce.Audio{ReadSeekCloser: nopCloser{bytes.NewReader(b)}, Size: int64(len(b)),
		ContentType: enforce.AudioContentType(rec.Format), ModTime: rec.StoppedAt}, nil
}

// DeleteAudio implements enforce.RecordingAudio.
func (a *Audio) DeleteAudio(_ context.Context, rec enforce.Recording) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.files, rec.Name)
	return nil
}

// StoredRecordings implements enforce.ForeignLister (format "wav").
func (a *Audio) StoredRecordings(context.Context) ([]enforce.Recording, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]enforce.Recording, 0, len(a.files))
	for name := range a.files {
		out = append(out, enforce.Recording{Name: name, Format: "wav"})
	}
	return out, nil
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

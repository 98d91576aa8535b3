package freeswitch

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/callwarden/callwarden/enforce"
)

// SharedDir reaches the recordings FreeSWITCH writes (RecordingsDir,
// <name>.wav) through a directory the daemon shares with it: ESL cannot
// carry a file's bytes, so the daemon reads the files where a shared
// volume (NFS, a container volume) shows them, at Dir. It implements
// enforce.RecordingAudio and enforce.ForeignLister.
type SharedDir struct {
	Dir string
}

var (
	_ enforce.RecordingAudio = SharedDir{}
	_ enforce.ForeignLister  = SharedDir{}
)

// path is rec's file; a name that would leave Dir is refused.
func (d SharedDir) path(rec enforce.Recording) (string, error) {
	format := rec.Format
	if format == "" {
		format = "wav"
	}
	name := rec.Name + "." + format
	if !filepath.IsLocal(name) || strings.ContainsRune(name, filepath.Separator) {
		return "", fmt.Errorf("recording %s: name %q is not a file of the recordings directory", rec.ID, rec.Name)
	}
	return filepath.Join(d.Dir, name), nil
}

// OpenAudio implements enforce.RecordingAudio. Errors: enforce.ErrNotFound
// (no such file), enforce.ErrUnavailable (the directory cannot be read).
func (d SharedDir) OpenAudio(_ context.Context, rec enforce.Recording) (enforce.Audio, error) {
	p, err := d.path(rec)
	if err != nil {
		return enforce.Audio{}, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return enforce.Audio{}, fmt.Errorf("recording %s: %w: %w", rec.ID, enforce.ErrNotFound, err)
	}
	if err != nil {
		return enforce.Audio{}, fmt.Errorf("recording %s: %w: %w", rec.ID, enforce.ErrUnavailable, err)
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return enforce.Audio{}, fmt.Errorf("recording %s: %w: %w", rec.ID, enforce.ErrUnavailable, err)
	}
	return enforce.Audio{ReadSeekCloser: f, Size: st.Size(), ContentType: enforce.AudioContentType(filepath.Ext(p)[1:]), ModTime: st.ModTime()}, nil
}

// DeleteAudio implements enforce.RecordingAudio; a file already gone is
// not an error. Errors: enforce.ErrUnavailable.
func (d SharedDir) DeleteAudio(_ context.Context, rec enforce.Recording) error {
	p, err := d.path(rec)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete recording %s: %w: %w", rec.ID, enforce.ErrUnavailable, err)
	}
	return nil
}

// StoredRecordings implements enforce.ForeignLister: the directory's
// files, named without their extension. Errors: enforce.ErrUnavailable.
func (d SharedDir) StoredRecordings(context.Context) ([]enforce.Recording, error) {
	entries, err := os.ReadDir(d.Dir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w: %w", d.Dir, enforce.ErrUnavailable, err)
	}
	var out []enforce.Recording
	for _, e := range entries {
		if e.Type().IsRegular() {
			ext := filepath.Ext(e.Name())
			out = append(out, enforce.Recording{Name: strings.TrimSuffix(e.Name(), ext), Format: strings.TrimPrefix(ext, ".")})
		}
	}
	return out, nil
}

// PBX names this FreeSWITCH in the metadata of the recordings it makes
// (Recording.PBX).
func (a *Adapter) PBX() string { return a.o.PBX }

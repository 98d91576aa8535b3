package freeswitch

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/callwarden/callwarden/enforce"
)

func TestSharedDirServesListsAndDeletesFreeSWITCHRecordings(t *testing.T) {
	ctx := context.Background()
	dir := SharedDir{Dir: t.TempDir()}
	if err := os.WriteFile(filepath.Join(dir.Dir, "callwarden-100000000001.wav"), []byte("RIFF...."), 0o600); err != nil {
		t.Fatal(err)
	}
	rec := enforce.Recording{ID: "100000000001", Name: "callwarden-100000000001", Format: "wav"}
	a, err := dir.OpenAudio(ctx, rec)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(a)
	_ = a.Close()
	if string(b) != "RIFF...." || a.Size != 8 || a.ContentType != "audio/wav" {
		t.Errorf("audio %q size %d type %q", b, a.Size, a.ContentType)
	}
	stored, err := dir.StoredRecordings(ctx)
	if err != nil || len(stored) != 1 || stored[0].Name != rec.Name || stored[0].Format != "wav" {
		t.Errorf("StoredRecordings = %+v, %v", stored, err)
	}
	if err := dir.DeleteAudio(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if _, err := dir.OpenAudio(ctx, rec); !errors.Is(err, enforce.ErrNotFound) {
		t.Errorf("after delete: %v, want ErrNotFound", err)
	}
	if err := dir.DeleteAudio(ctx, rec); err != nil {
		t.Errorf("deleting audio already gone: %v", err)
	}
	if _, err := dir.OpenAudio(ctx, enforce.Recording{ID: "x", Name: "../../etc/passwd"}); err == nil || errors.Is(err, enforce.ErrNotFound) {
		t.Errorf("a name outside the directory: %v, want refused", err)
	}
}

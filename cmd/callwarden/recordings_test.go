package main

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/callwarden/callwarden/cache/memory"
	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/adminapi"
	"github.com/callwarden/callwarden/pbx/httpauth/httpauthtest"
	"github.com/callwarden/callwarden/pbx/session/sessiontest"
)

// recordingsAPI serves the admin API over the example profiles, a memory
// catalogue holding two sales recordings and one of support, and their
// audio; tokens "alice-token" and "admin-token".
func recordingsAPI(t *testing.T) (*httptest.Server, *memory.Recordings, *sessiontest.Audio, *memory.AuditLog) {
	t.Helper()
	e := &env{stdin: strings.NewReader(""), stdout: os.Stdout, stderr: os.Stderr}
	snap, _, err := e.loadSnapshot([]string{"../../deploy/examples/profiles.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	cat, audio, log := memory.NewRecordings(), &sessiontest.Audio{}, memory.NewAuditLog(memory.AuditOptions{})
	now := time.Date(2026, 11, 10, 10, 0, 0, 0, time.UTC)
	for i, q := range []string{"sales", "support", "sales"} {
		r := enforce.Recording{ID: "10000000000" + string(rune('1'+i)), Queue: q, Target: "dave", StartedBy: "alice",
			StartedAt: now.Add(-time.Duration(3-i) * time.Hour), State: enforce.RecordingStopped, Format: "wav", PBX: "asterisk"}
		r.Name, r.StoppedAt = "callwarden-"+r.ID, r.StartedAt.Add(time.Minute)
		if err := cat.SaveRecording(context.Background(), r); err != nil {
			t.Fatal(err)
		}
		audio.Put(r.Name, []byte("RIFF-"+r.ID))
	}
	admin, err := adminapi.NewAdmin(adminapi.AdminOptions{
		Store: snapshotPolicy{snapshot: func() *enforce.Snapshot { return snap }}, Snapshot: func() *enforce.Snapshot { return snap },
		Auth: httpauthtest.Tokens(t, "alice", "admin"), Codec: configCodec{}, Auditor: log, AuditReader: log,
		Recordings: cat, Catalogue: cat, Audio: audio, Now: func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(admin)
	t.Cleanup(srv.Close)
	return srv, cat, audio, log
}

func TestRecordingsCommands(t *testing.T) {
	srv, cat, audio, _ := recordingsAPI(t)
	as := func(user string) map[string]string {
		return map[string]string{EnvURL: srv.URL, EnvToken: user + "-token"}
	}
	t.Run("ls lists what the token's user may play back, newest first, page by page", func(t *testing.T) {
		r := runCLI(t, "", as("alice"), "recordings", "ls", "--queue", "sales", "--limit", "1")
		if r.code != exitOK || !strings.Contains(r.stderr, "more: --cursor ") {
			t.Fatalf("ls: %+v", r)
		}
		var row adminapi.RecordingRow
		if err := json.Unmarshal([]byte(r.stdout), &row); err != nil || row.ID != "100000000003" {
			t.Errorf("first page %s: %v", r.stdout, err)
		}
		r = runCLI(t, "", as("alice"), "recordings", "ls", "--all", "--limit", "1")
		if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); r.code != exitOK || len(lines) != 3 {
			t.Errorf("ls --all: %+v", r)
		}
	})
	t.Run("get writes the audio, or a range of it, to a file", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "a.wav")
		r := runCLI(t, "", as("alice"), "recordings", "get", "100000000001", "-o", out, "--range", "bytes=0-3")
		b, _ := os.ReadFile(out)
		if r.code != exitOK || string(b) != "RIFF" || !strings.Contains(r.stderr, "audio/wav") {
			t.Errorf("get: %+v, file %q", r, b)
		}
	})
	t.Run("a refusal is a failure that says why", func(t *testing.T) {
		r := runCLI(t, "", as("alice"), "recordings", "rm", "100000000001")
		if r.code != exitFailure || !strings.Contains(r.stderr, "403") || !audio.Has("callwarden-100000000001") {
			t.Errorf("alice's rm: %+v", r)
		}
	})
	t.Run("rm deletes audio and metadata; access shows each attempt", func(t *testing.T) {
		if r := runCLI(t, "", as("admin"), "recordings", "rm", "100000000001"); r.code != exitOK {
			t.Fatalf("admin's rm: %+v", r)
		}
		if _, err := cat.Recording(context.Background(), "100000000001"); err == nil || audio.Has("callwarden-100000000001") {
			t.Errorf("the recording is still there: %v", err)
		}
		r := runCLI(t, "", as("admin"), "recordings", "access", "100000000001")
		var got []string
		for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
			var rec enforce.AuditRecord
			if err := json.Unmarshal([]byte(l), &rec); err != nil {
				t.Fatalf("access line %q: %v", l, err)
			}
			got = append(got, rec.User+" "+rec.Action+" "+rec.Decision)
		}
		want := "alice recording.playback allow,alice recording.delete deny,admin recording.delete allow"
		if r.code != exitOK || strings.Join(got, ",") != want {
			t.Errorf("access: %+v\ngot  %s\nwant %s", r, strings.Join(got, ","), want)
		}
	})
	t.Run("show prints the metadata; bad input is said", func(t *testing.T) {
		if r := runCLI(t, "", as("alice"), "recordings", "show", "100000000002"); r.code != exitOK || !strings.Contains(r.stdout, `"queue":"support"`) {
			t.Errorf("show: %+v", r)
		}
		if r := runCLI(t, "", as("alice"), "recordings", "show"); r.code != exitBadInput {
			t.Errorf("show without id: %+v", r)
		}
		if r := runCLI(t, "", map[string]string{EnvURL: srv.URL}, "recordings", "show", "100000000002"); r.code != exitBadInput || !strings.Contains(r.stderr, "no admin token") {
			t.Errorf("show without token: %+v", r)
		}
	})
}

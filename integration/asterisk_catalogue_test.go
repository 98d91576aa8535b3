package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/callwarden/callwarden/cache/memory"
	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/integration/lab"
	"github.com/callwarden/callwarden/pbx/adminapi"
	"github.com/callwarden/callwarden/pbx/asterisk"
	"github.com/callwarden/callwarden/pbx/httpauth/httpauthtest"
	"github.com/callwarden/callwarden/pbx/session"
)

// catalogueAPI serves the admin API over cw's recordings, Asterisk's
// stored recordings (ARI) and an audit log of its own, deciding from the
// example profiles; each user's token is "<user>-token".
func catalogueAPI(t *testing.T, cw *callwarden) (*httptest.Server, *memory.AuditLog) {
	t.Helper()
	snap := exampleSnapshot(t)
	log := memory.NewAuditLog(memory.AuditOptions{})
	admin, err := adminapi.NewAdmin(adminapi.AdminOptions{
		Store: memory.NewFile(func() (enforce.Policy, error) { return mustExampleProfiles(t), nil }), Snapshot: func() *enforce.Snapshot { return snap },
		Auth: httpauthtest.Tokens(t, "admin", "alice", "bob", "carol"), Codec: noCodec{}, Auditor: log, AuditReader: log,
		Recordings: cw.recs, Catalogue: cw.recs, Audio: cw.a.StoredAudio(), Now: cw.now.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(admin)
	t.Cleanup(srv.Close)
	return srv, log
}

// recordOnce has alice record the sales call on ext for d, and returns the
// stopped recording's metadata.
func recordOnce(t *testing.T, l *lab.TestLab, cw *callwarden, events *lab.EventStream, ext string, d time.Duration) enforce.Recording {
	t.Helper()
	ctx := monitorContext(t)
	n := cw.audit.count(decision("alice", "recording.stop", "allow"))
	dialDone(ctx, t, l, events, "1001", "*225"+ext)
	cw.audit.wait(ctx, t, "alice starts", decision("alice", "recording.start", "allow"))
	rec, err := cw.recs.ActiveRecording(ctx, "agent"+ext)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(d)
	dialDone(ctx, t, l, events, "1001", "*229"+ext)
	waitFor(ctx, t, "alice's stop", func() error {
		if cw.audit.count(decision("alice", "recording.stop", "allow")) == n {
			return errors.New("not stopped yet")
		}
		return nil
	})
	rec, err = cw.recs.Recording(ctx, rec.ID)
	if err != nil || rec.State != enforce.RecordingStopped {
		t.Fatalf("recording %+v, %v: want stopped", rec, err)
	}
	return rec
}

// storedExists reports whether ARI still lists the stored recording name.
func storedExists(t *testing.T, l *lab.TestLab, name string) bool {
	t.Helper()
	err := ari(monitorContext(t), l, http.MethodGet, "/recordings/stored/"+url.PathEscape(name), nil, nil)
	if errors.Is(err, lab.ErrNotFound) {
		return false
	}
	mustOK(t, err)
	return true
}

func TestRecordingCatalogueOnAsterisk(t *testing.T) {
	l, ctx, cw, events := startMonitoring(t, asterisk.WatchdogEnforce)
	srv, log := catalogueAPI(t, cw)
	_, ext := salesCall(ctx, t, l, events, "5550123")
	rec := recordOnce(t, l, cw, events, ext, 2*time.Second)
	if rec.Format != "wav" || rec.StartedBy != "alice" || rec.Queue != "sales" {
		t.Errorf("catalogued %+v, want alice's wav recording of the sales call", rec)
	}

	call := func(user, method, path string, hdr http.Header) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, method, srv.URL+path, nil)
		mustOK(t, err)
		for k, v := range hdr {
			req.Header[k] = v
		}
		req.Header.Set("Authorization", "Bearer "+user+"-token")
		resp, err := srv.Client().Do(req)
		mustOK(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		mustOK(t, err)
		return resp, b
	}

	t.Run("the recorder and an in-scope teacher list it, an out-of-scope supervisor does not", func(t *testing.T) {
		for user, want := range map[string]bool{"alice": true, "bob": true, "carol": false} {
			resp, b := call(user, "GET", "/v1/recordings", nil)
			var body adminapi.RecordingsBody
			if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &body) != nil {
				t.Fatalf("%s: %d %s", user, resp.StatusCode, b)
			}
			listed := slices.ContainsFunc(body.Recordings, func(r adminapi.RecordingRow) bool { return r.ID == rec.ID })
			if listed != want {
				t.Errorf("%s lists %d recordings (ours listed: %v), want listed %v", user, len(body.Recordings), listed, want)
			}
		}
	})

	t.Run("range requests read back the bytes Asterisk stored", func(t *testing.T) {
		file, err := l.ReadAsteriskFile(ctx, "/var/spool/asterisk/recording/"+rec.Name+".wav")
		mustOK(t, err)
		if len(file) < 1000 {
			t.Fatalf("Asterisk stored %d bytes, want a few seconds of audio", len(file))
		}
		var got []byte
		for _, rg := range []string{"bytes=0-499", "bytes=500-"} {
			resp, b := call("admin", "GET", "/v1/recordings/"+rec.ID+"/audio?download=1", http.Header{"Range": {rg}})
			if resp.StatusCode != http.StatusPartialContent || resp.Header.Get("Content-Type") != "audio/wav" {
				t.Fatalf("%s: %d %s %q", rg, resp.StatusCode, resp.Header.Get("Content-Type"), b)
			}
			got = append(got, b...)
		}
		if !bytes.Equal(got, file) {
			t.Errorf("the two ranges hold %d bytes, Asterisk's file %d: not the same bytes", len(got), len(file))
		}
		if _, err := lab.ParseWAV(got); err != nil {
			t.Errorf("the served audio is no WAV: %v", err)
		}
	})

	t.Run("a delete without recording.delete is refused and leaves the audio; with it, it is gone", func(t *testing.T) {
		if resp, b := call("alice", "DELETE", "/v1/recordings/"+rec.ID, nil); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("alice's delete: %d %s", resp.StatusCode, b)
		}
		if !storedExists(t, l, rec.Name) {
			t.Fatal("a refused delete removed the audio from Asterisk")
		}
		if resp, b := call("admin", "DELETE", "/v1/recordings/"+rec.ID, nil); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("admin's delete: %d %s", resp.StatusCode, b)
		}
		if storedExists(t, l, rec.Name) {
			t.Error("the deleted recording is still stored in Asterisk")
		}
		if _, err := cw.recs.Recording(ctx, rec.ID); !errors.Is(err, enforce.ErrNotFound) {
			t.Errorf("the deleted recording is still catalogued: %v", err)
		}
	})

	t.Run("its access history shows each attempt", func(t *testing.T) {
		resp, b := call("admin", "GET", "/v1/recordings/"+rec.ID+"/access", nil)
		var body adminapi.AccessBody
		if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &body) != nil {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
		var got []string
		for _, a := range body.Accesses {
			got = append(got, fmt.Sprintf("%s %s %s", a.User, a.Action, a.Decision))
			if a.Addr == "" {
				t.Errorf("record %+v says not where it came from", a)
			}
		}
		want := []string{"admin recording.export allow", "admin recording.export allow", "alice recording.delete deny", "admin recording.delete allow"}
		if !slices.Equal(got, want) {
			t.Errorf("access history %q, want %q", got, want)
		}
	})

	t.Run("retention deletes an expired recording from Asterisk and the catalogue", func(t *testing.T) {
		old := recordOnce(t, l, cw, events, ext, time.Second)
		if !storedExists(t, l, old.Name) {
			t.Fatal("the second recording is not stored")
		}
		u := &session.Upkeep{Catalogue: cw.recs, Audio: cw.a.StoredAudio(), Audit: log, Retain: 90 * 24 * time.Hour,
			Now: func() time.Time { return labNow.Add(91 * 24 * time.Hour) }}
		if n, err := u.Sweep(ctx); err != nil || n != 1 {
			t.Fatalf("Sweep = %d, %v; want the one recording left deleted", n, err)
		}
		if storedExists(t, l, old.Name) {
			t.Error("the expired recording is still stored in Asterisk")
		}
		if _, err := cw.recs.Recording(ctx, old.ID); !errors.Is(err, enforce.ErrNotFound) {
			t.Errorf("the expired recording is still catalogued: %v", err)
		}
		recs, err := log.ReadAudit(ctx, enforce.AuditFilter{Recording: old.ID})
		if err != nil || len(recs) != 1 || recs[0].Source != session.SourceRetention || recs[0].Action != "recording.delete" {
			t.Errorf("audit of the expiry: %+v, %v", recs, err)
		}
	})
}

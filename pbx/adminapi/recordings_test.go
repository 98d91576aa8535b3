package adminapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/callwarden/callwarden/cache/memory"
	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/adminapi"
	"github.com/callwarden/callwarden/pbx/httpauth/httpauthtest"
	"github.com/callwarden/callwarden/pbx/session/sessiontest"
)

// catalogueFixture serves the admin API over a memory catalogue and a
// fake PBX audio store, deciding from cataloguePolicy.
type catalogueFixture struct {
	*adminFixture
	cat   *memory.Recordings
	audio *sessiontest.Audio
}

// cataloguePolicy: root may do everything with recordings; alice plays
// back sales and support (caller masked); bob plays back sales
// recordings at most 720h old; carol exports and deletes sales
// recordings but may not play them back; dave has no profile.
func cataloguePolicy() enforce.Policy {
	all := [4]enforce.Scope{{Kind: enforce.ScopeAll}}
	return enforce.Policy{
		Profiles: []enforce.Profile{
			{Name: "administrator", Grants: []enforce.Grant{
				{Actions: enforce.NewActionSet(enforce.RecordingPlayback, enforce.RecordingExport, enforce.RecordingDelete), Scopes: all},
				{Actions: enforce.NewActionSet(enforce.ProfileAssign), Profiles: []string{"administrator"}, Scopes: all},
			}},
			{Name: "supervisor", MaskDigits: 4, Grants: []enforce.Grant{
				{Actions: enforce.NewActionSet(enforce.RecordingPlayback), Scopes: assignedQueues()},
			}},
			{Name: "teacher", Grants: []enforce.Grant{
				{Actions: enforce.NewActionSet(enforce.RecordingPlayback), Scopes: assignedQueues(), RecordedWithin: 720 * time.Hour},
			}},
			{Name: "archivist", Grants: []enforce.Grant{
				{Actions: enforce.NewActionSet(enforce.RecordingExport, enforce.RecordingDelete),
					Scopes: [4]enforce.Scope{{Kind: enforce.ScopeList, Values: []string{"sales"}}}},
			}},
		},
		Users: []enforce.User{
			{ID: "root", Profile: "administrator"},
			{ID: "alice", Profile: "supervisor", Queues: []string{"sales", "support"}},
			{ID: "bob", Profile: "teacher", Queues: []string{"sales"}},
			{ID: "carol", Profile: "archivist"},
			{ID: "dave", Queues: []string{"sales"}},
		},
	}
}

// catalogued are the fixture's recordings, newest first: ids end in 1..6.
// 4 is 800h old; 6 is in progress.
var catalogued = []enforce.Recording{
	{ID: "100000000006", Queue: "sales", Target: "agent1", StartedAt: now.Add(-time.Minute), State: enforce.RecordingActive},
	{ID: "100000000005", Queue: "billing", Target: "agent3", StartedAt: now.Add(-2 * time.Hour)},
	{ID: "100000000003", Queue: "support", Target: "agent2", StartedAt: now.Add(-3 * time.Hour)},
	{ID: "100000000002", Queue: "sales", Target: "agent2", StartedAt: now.Add(-4 * time.Hour)},
	{ID: "100000000001", Queue: "sales", Target: "agent1", StartedAt: now.Add(-5 * time.Hour), Caller: "0612345678"},
	{ID: "100000000004", Queue: "sales", Target: "agent1", StartedAt: now.Add(-800 * time.Hour)},
}

func newCatalogueFixture(tb testing.TB) *catalogueFixture {
	tb.Helper()
	f := &catalogueFixture{
		adminFixture: &adminFixture{store: &fakeStore{policy: cataloguePolicy(), gen: 1}, audit: &fakeAudit{}, holder: &enforce.Holder{}},
		cat:          memory.NewRecordings(),
		audio:        &sessiontest.Audio{},
	}
	f.holder.Store(mustSnapshot(tb, cataloguePolicy(), 1))
	for _, r := range catalogued {
		r.Name, r.PBX, r.Format, r.StartedBy = "callwarden-"+r.ID, "pbx1", "wav", "alice"
		if r.State == "" {
			r.State, r.StoppedAt = enforce.RecordingStopped, r.StartedAt.Add(30*time.Second)
			f.audio.Put(r.Name, []byte("RIFF-audio-of-"+r.ID))
		}
		if err := f.cat.SaveRecording(context.Background(), r); err != nil {
			tb.Fatal(err)
		}
	}
	admin, err := adminapi.NewAdmin(adminapi.AdminOptions{
		Store: f.store, Snapshot: f.holder.Load, Auth: httpauthtest.Tokens(tb, "root", "alice", "bob", "carol", "dave"), Codec: jsonCodec{},
		Auditor: f.audit, AuditReader: f.audit, Recordings: f.cat, Catalogue: f.cat, Audio: f.audio,
		Now: func() time.Time { return now },
	})
	if err != nil {
		tb.Fatal(err)
	}
	f.srv = httptest.NewServer(admin)
	tb.Cleanup(f.srv.Close)
	return f
}

// list lists as user with query and returns the ids' last digits and the
// next cursor.
func (f *catalogueFixture) list(tb testing.TB, user, query string) (ids, cursor string) {
	tb.Helper()
	r := f.do(tb, "GET", "/v1/recordings"+query, user, "", "")
	if r.code != http.StatusOK {
		tb.Fatalf("GET /v1/recordings%s as %s: %d %s", query, user, r.code, r.body)
	}
	var body adminapi.RecordingsBody
	if err := json.Unmarshal([]byte(r.body), &body); err != nil {
		tb.Fatal(err)
	}
	for _, rec := range body.Recordings {
		ids += rec.ID[len(rec.ID)-1:]
	}
	return ids, body.NextCursor
}

func TestRecordingsListShowsOnlyWhatEachCallerMayPlayBack(t *testing.T) {
	f := newCatalogueFixture(t)
	for _, tc := range []struct{ name, user, query, want string }{
		{"an administrator lists every recording, newest first", "root", "", "653214"},
		{"a supervisor lists its queues' recordings only", "alice", "", "63214"},
		{"a teacher lists its queue's recordings within recorded_within", "bob", "", "621"},
		{"who may export but not play back lists nothing", "carol", "", ""},
		{"agent= keeps one agent's recordings, still decided", "bob", "?agent=agent1", "61"},
		{"queue= keeps one queue's recordings, still decided", "alice", "?queue=billing", ""},
		{"from is inclusive, to exclusive", "root", "?from=" + now.Add(-4*time.Hour).Format(time.RFC3339) + "&to=" + now.Add(-2*time.Hour).Format(time.RFC3339), "32"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, _ := f.list(t, tc.user, tc.query); got != tc.want {
				t.Errorf("listed %q, want %q", got, tc.want)
			}
		})
	}
	t.Run("a user without a profile is refused", func(t *testing.T) {
		f.do(t, "GET", "/v1/recordings", "dave", "", "").wantField(t, http.StatusForbidden, "reason", "no_profile")
	})
	t.Run("each listing is audited: who, what query, how many rows, from where", func(t *testing.T) {
		f.list(t, "bob", "?agent=agent1")
		var found bool
		for _, r := range f.audit.All() {
			if r.Action == "recording.list" && r.User == "bob" && r.Target == "agent1" && r.Addr != "" &&
				strings.Contains(r.Detail, "2 recording(s) listed") {
				found = true
			}
		}
		if !found {
			t.Errorf("no recording.list record of bob's listing among %+v", f.audit.All())
		}
	})
	t.Run("a caller number is masked per the reader's profile", func(t *testing.T) {
		r := f.do(t, "GET", "/v1/recordings?agent=agent1&from="+now.Add(-6*time.Hour).Format(time.RFC3339)+"&to="+now.Add(-4*time.Hour).Format(time.RFC3339), "alice", "", "")
		if !strings.Contains(r.body, `"caller":"061234****"`) || !strings.Contains(r.body, `"duration":30`) {
			t.Errorf("body %s, want the caller masked and a duration of 30s", r.body)
		}
	})
	t.Run("pages follow one another in a stable order", func(t *testing.T) {
		var all string
		cursor := ""
		for range 5 {
			q := "?limit=2"
			if cursor != "" {
				q += "&cursor=" + cursor
			}
			ids, next := f.list(t, "root", q)
			all += ids
			if cursor = next; cursor == "" {
				break
			}
		}
		if all != "653214" {
			t.Errorf("pages gave %q, want 653214", all)
		}
	})
	for _, q := range []string{"?limit=0", "?limit=1001", "?cursor=abc", "?from=yesterday", "?agent=a%00b", "?color=red", "?limit=1&limit=2"} {
		t.Run("bad query "+q, func(t *testing.T) {
			if r := f.do(t, "GET", "/v1/recordings"+q, "root", "", ""); r.code != http.StatusBadRequest {
				t.Errorf("code %d body %s, want 400", r.code, r.body)
			}
		})
	}
}

func TestRecordingsListReadsABoundedShareOfTheCatalogue(t *testing.T) {
	f := newCatalogueFixture(t)
	// 30 billing recordings alice may not play back, newer than hers: a
	// page of 1 reads at most 10 of them and says where to go on.
	for i := range 30 {
		r := enforce.Recording{ID: fmt.Sprintf("2000000000%02d", i), Name: "x", Queue: "billing", Target: "agent9",
			StartedBy: "root", StartedAt: now.Add(-time.Duration(i) * time.Second), State: enforce.RecordingStopped}
		if err := f.cat.SaveRecording(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	ids, cursor := f.list(t, "alice", "?agent=agent9&limit=1")
	if ids != "" || cursor == "" {
		t.Fatalf("first page %q, cursor %q: want none and a cursor", ids, cursor)
	}
	pages := 1
	for cursor != "" {
		ids, cursor = f.list(t, "alice", "?agent=agent9&limit=1&cursor="+cursor)
		if ids != "" {
			t.Fatalf("alice listed %q of agent9's billing recordings", ids)
		}
		pages++
	}
	if pages != 3 {
		t.Errorf("%d pages for 30 refused recordings, want 3 of at most 10 read each", pages)
	}
}

func TestRecordingAudioServesRangesToWhoMayPlayOrExport(t *testing.T) {
	f := newCatalogueFixture(t)
	want := []byte("RIFF-audio-of-100000000001")
	get := func(t *testing.T, user, query, rng string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest("GET", f.srv.URL+"/v1/recordings/100000000001/audio"+query, nil)
		req.Header.Set("Authorization", "Bearer "+user+"-token")
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		resp, err := f.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	t.Run("a range request is answered with that range", func(t *testing.T) {
		resp, b := get(t, "alice", "", "bytes=5-9")
		if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(b, want[5:10]) ||
			resp.Header.Get("Content-Range") != fmt.Sprintf("bytes 5-9/%d", len(want)) {
			t.Errorf("%d %q %s, want 206 %q", resp.StatusCode, b, resp.Header.Get("Content-Range"), want[5:10])
		}
		if ct, cd := resp.Header.Get("Content-Type"), resp.Header.Get("Content-Disposition"); ct != "audio/wav" || !strings.HasPrefix(cd, "inline") {
			t.Errorf("Content-Type %q, Content-Disposition %q: want audio/wav, inline", ct, cd)
		}
	})
	t.Run("the whole file reads back whole", func(t *testing.T) {
		resp, b := get(t, "alice", "", "")
		if resp.StatusCode != http.StatusOK || !bytes.Equal(b, want) || resp.Header.Get("Accept-Ranges") != "bytes" {
			t.Errorf("%d %q, want 200 and the file", resp.StatusCode, b)
		}
	})
	t.Run("the audio's size is kept in the metadata once read", func(t *testing.T) {
		rec, err := f.cat.Recording(context.Background(), "100000000001")
		if err != nil || rec.Size != int64(len(want)) {
			t.Errorf("metadata %+v (%v): want size %d", rec, err, len(want))
		}
	})
	t.Run("a download needs recording.export", func(t *testing.T) {
		if resp, _ := get(t, "alice", "?download=1", ""); resp.StatusCode != http.StatusForbidden {
			t.Errorf("alice's download: %d, want 403", resp.StatusCode)
		}
		resp, b := get(t, "carol", "?download=1", "")
		if resp.StatusCode != http.StatusOK || !bytes.Equal(b, want) || !strings.HasPrefix(resp.Header.Get("Content-Disposition"), `attachment; filename="callwarden-100000000001.wav"`) {
			t.Errorf("carol's download: %d %q %s", resp.StatusCode, b, resp.Header.Get("Content-Disposition"))
		}
		if resp, _ := get(t, "carol", "", ""); resp.StatusCode != http.StatusForbidden {
			t.Errorf("carol's inline listen: %d, want 403 (no recording.playback)", resp.StatusCode)
		}
	})
	t.Run("recorded_within is decided at the time of the request", func(t *testing.T) {
		r := f.do(t, "GET", "/v1/recordings/100000000004/audio", "bob", "", "")
		r.wantField(t, http.StatusForbidden, "reason", "recording_too_old")
	})
	t.Run("a recording in progress has no audio yet", func(t *testing.T) {
		if r := f.do(t, "GET", "/v1/recordings/100000000006/audio", "root", "", ""); r.code != http.StatusConflict {
			t.Errorf("code %d body %s, want 409", r.code, r.body)
		}
	})
	t.Run("every attempt is audited with where it came from", func(t *testing.T) {
		var got []string
		for _, r := range f.audit.All() {
			if r.Recording == "100000000001" {
				if !strings.HasPrefix(r.Addr, "127.0.0.1:") {
					t.Errorf("record %+v has no client address", r)
				}
				got = append(got, r.User+" "+r.Action+" "+r.Decision)
			}
		}
		want := []string{"alice recording.playback allow", "alice recording.playback allow", "alice recording.export deny",
			"carol recording.export allow", "carol recording.playback deny"}
		if !slices.Equal(got, want) {
			t.Errorf("audited %q, want %q", got, want)
		}
	})
}

func TestRecordingDeleteNeedsRecordingDeleteAndRemovesTheAudio(t *testing.T) {
	f := newCatalogueFixture(t)
	const id, name = "100000000002", "callwarden-100000000002"
	r := f.do(t, "DELETE", "/v1/recordings/"+id, "alice", "", "")
	r.wantField(t, http.StatusForbidden, "reason", "action_not_granted")
	if _, err := f.cat.Recording(context.Background(), id); err != nil || !f.audio.Has(name) {
		t.Fatalf("a refused delete removed something: metadata %v, audio %v", err, f.audio.Has(name))
	}
	if r := f.do(t, "DELETE", "/v1/recordings/100000000003", "carol", "", ""); r.code != http.StatusForbidden {
		t.Errorf("carol deleting a support recording: %d, want 403", r.code)
	}
	if r := f.do(t, "DELETE", "/v1/recordings/"+id, "carol", "", ""); r.code != http.StatusNoContent {
		t.Fatalf("carol's delete: %d %s", r.code, r.body)
	}
	if _, err := f.cat.Recording(context.Background(), id); err == nil || f.audio.Has(name) {
		t.Errorf("after the delete: metadata %v, audio %v; want both gone", err, f.audio.Has(name))
	}
	if ids, _ := f.list(t, "root", ""); ids != "65314" {
		t.Errorf("listed %q after the delete, want 65314", ids)
	}
	if r := f.do(t, "DELETE", "/v1/recordings/"+id, "carol", "", ""); r.code != http.StatusNotFound {
		t.Errorf("second delete: %d, want 404", r.code)
	}
	if r := f.do(t, "DELETE", "/v1/recordings/100000000006", "root", "", ""); r.code != http.StatusConflict {
		t.Errorf("deleting a recording in progress: %d, want 409", r.code)
	}

	t.Run("its access history shows each attempt, to an administrator", func(t *testing.T) {
		r := f.do(t, "GET", "/v1/recordings/"+id+"/access", "root", "", "")
		var body adminapi.AccessBody
		if err := json.Unmarshal([]byte(r.body), &body); err != nil || r.code != http.StatusOK {
			t.Fatalf("%d %s", r.code, r.body)
		}
		var got []string
		for _, a := range body.Accesses {
			got = append(got, a.User+" "+a.Action+" "+a.Decision)
		}
		if want := []string{"alice recording.delete deny", "carol recording.delete allow"}; !slices.Equal(got, want) {
			t.Errorf("access history %q, want %q", got, want)
		}
	})
	t.Run("once deleted, only an administrator reads its history", func(t *testing.T) {
		if r := f.do(t, "GET", "/v1/recordings/"+id+"/access", "carol", "", ""); r.code != http.StatusNotFound {
			t.Errorf("carol: %d, want 404", r.code)
		}
	})
	t.Run("who may not delete a recording does not read its history", func(t *testing.T) {
		if r := f.do(t, "GET", "/v1/recordings/100000000001/access", "alice", "", ""); r.code != http.StatusForbidden {
			t.Errorf("alice: %d, want 403", r.code)
		}
	})
}

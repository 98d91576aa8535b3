package adminapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/callwarden/callwarden/cache/memory"
	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/adminapi"
	"github.com/callwarden/callwarden/pbx/httpauth/httpauthtest"
)

// The catalogue of the benchmark: 1,000,000 recordings over 1,000 queues
// and 5,000 agents, one a second.
const (
	benchRecordings = 1_000_000
	benchQueues     = 1_000
	benchAgents     = 5_000
)

var (
	benchOnce  sync.Once
	benchAdmin *adminapi.Admin
)

// benchCatalogue builds, once, the admin API over the benchmark's
// catalogue: root sees everything; teacher plays back queue q7 (1,000
// recordings); coach plays back agent a42's (200).
func benchCatalogue(b *testing.B) *adminapi.Admin {
	benchOnce.Do(func() {
		cat := memory.NewRecordings()
		t0 := now.Add(-benchRecordings * time.Second)
		for i := range benchRecordings {
			err := cat.SaveRecording(context.Background(), enforce.Recording{
				ID: fmt.Sprintf("%012d", i), Name: "r", Queue: fmt.Sprintf("q%d", i%benchQueues), Target: fmt.Sprintf("a%d", i%benchAgents),
				StartedBy: "root", StartedAt: t0.Add(time.Duration(i) * time.Second), State: enforce.RecordingStopped,
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		all := [4]enforce.Scope{{Kind: enforce.ScopeAll}}
		pol := enforce.Policy{
			Profiles: []enforce.Profile{
				{Name: "administrator", Grants: []enforce.Grant{{Actions: enforce.NewActionSet(enforce.RecordingPlayback, enforce.ProfileAssign), Profiles: []string{"administrator"}, Scopes: all}}},
				{Name: "teacher", Grants: []enforce.Grant{{Actions: enforce.NewActionSet(enforce.RecordingPlayback), Scopes: assignedQueues()}}},
				{Name: "coach", Grants: []enforce.Grant{{Actions: enforce.NewActionSet(enforce.RecordingPlayback),
					Scopes: [4]enforce.Scope{enforce.DimAgents: {Kind: enforce.ScopeList, Values: []string{"a42"}}}}}},
			},
			Users: []enforce.User{
				{ID: "root", Profile: "administrator"},
				{ID: "teacher", Profile: "teacher", Queues: []string{"q7"}},
				{ID: "coach", Profile: "coach"},
			},
		}
		snap := mustSnapshot(b, pol, 1)
		a, err := adminapi.NewAdmin(adminapi.AdminOptions{
			Store: &fakeStore{policy: pol, gen: 1}, Snapshot: func() *enforce.Snapshot { return snap },
			Auth: httpauthtest.Tokens(b, "root", "teacher", "coach"), Codec: jsonCodec{}, Recordings: cat, Catalogue: cat,
			Now: func() time.Time { return now },
		})
		if err != nil {
			b.Fatal(err)
		}
		benchAdmin = a
	})
	return benchAdmin
}

// BenchmarkListRecordingsInScope lists one page of up to 1,000 recordings
// of the 1,000,000 catalogued, each decided, through the handler (JSON
// answer included).
func BenchmarkListRecordingsInScope(b *testing.B) {
	a := benchCatalogue(b)
	for name, sc := range map[string]struct {
		user string
		want int
	}{
		"teacher of one queue, 1000 in scope": {"teacher", 1000},
		"coach of one agent, 200 in scope":    {"coach", 200},
		"administrator, newest 1000":          {"root", 1000},
	} {
		list := func(b *testing.B) *httptest.ResponseRecorder {
			req := httptest.NewRequest("GET", "/v1/recordings?limit=1000", nil)
			req.Header.Set("Authorization", "Bearer "+sc.user+"-token")
			w := httptest.NewRecorder()
			a.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				b.Fatalf("%d %s", w.Code, w.Body)
			}
			return w
		}
		b.Run(name, func(b *testing.B) {
			var body adminapi.RecordingsBody
			if err := json.Unmarshal(list(b).Body.Bytes(), &body); err != nil || len(body.Recordings) != sc.want {
				b.Fatalf("%d recordings (%v), want %d", len(body.Recordings), err, sc.want)
			}
			b.ReportAllocs()
			for b.Loop() {
				list(b)
			}
		})
	}
}

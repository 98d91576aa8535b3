package checkapi_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/checkapi"
)

// TestDecisionLineIsStable pins the bytes of the decision log line that
// operators parse (callwarden serve writes it as JSON at info): its keys,
// their order and their encoding, for a plain check, a what-if check at
// another instant, a recording's age and a profile.assign with queues.
func TestDecisionLineIsStable(t *testing.T) {
	var out bytes.Buffer
	ec := zap.NewProductionEncoderConfig()
	ec.TimeKey = "" // the entry's own clock is not the line's subject
	ec.EncodeTime = zapcore.ISO8601TimeEncoder
	h, err := checkapi.New(checkapi.Options{
		Snapshot:       func() *enforce.Snapshot { return mustSnapshot(t, testPolicy(t), 7) },
		Now:            func() time.Time { return now },
		Auditor:        discardAudit{},
		CheckAuth:      checkapi.CheckAuthLoopback,
		DecisionLogger: zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(ec), zapcore.AddSync(&out), zap.InfoLevel)).Named("check"),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ query, want string }{
		{"user=alice&action=monitor.listen&queue=sales&agent=carol",
			`{"level":"info","logger":"check","msg":"decision","source":"http","asked_by":"loopback","user":"alice","action":"monitor.listen","queue":"sales","team":"","agent":"carol","site":"","decision":"allow","reason":"granted","profile":"supervisor","grant":0,"generation":7}`},
		{"user=alice&action=monitor.listen&queue=hr-hotline&at=2026-11-12T08:30:00Z",
			`{"level":"info","logger":"check","msg":"decision","source":"http","asked_by":"loopback","user":"alice","action":"monitor.listen","queue":"hr-hotline","team":"","agent":"","site":"","decision":"deny","reason":"protected_target","profile":"supervisor","grant":-1,"at":"2026-11-12T08:30:00.000Z","generation":7}`},
		{"user=bob&action=recording.playback&queue=sales&recorded_at=2026-11-09T10:00:00%2B01:00",
			`{"level":"info","logger":"check","msg":"decision","source":"http","asked_by":"loopback","user":"bob","action":"recording.playback","queue":"sales","team":"","agent":"","site":"","decision":"allow","reason":"granted","profile":"teacher","grant":0,"recorded_at":"2026-11-09T10:00:00.000+0100","generation":7}`},
		{"user=alice&action=profile.assign&assign=teacher&queue=sales&queue=support",
			`{"level":"info","logger":"check","msg":"decision","source":"http","asked_by":"loopback","user":"alice","action":"profile.assign","queue":"","team":"","agent":"","site":"","decision":"allow","reason":"granted","profile":"supervisor","grant":1,"assign_profile":"teacher","assign_queues":["sales","support"],"generation":7}`},
	} {
		out.Reset()
		r := httptest.NewRequest(http.MethodGet, "/v1/check?"+tc.query, nil)
		r.RemoteAddr = "127.0.0.1:40000"
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			t.Fatalf("%s: status %d: %s", tc.query, w.Code, w.Body)
		}
		if got := strings.TrimSuffix(out.String(), "\n"); got != tc.want {
			t.Errorf("%s: decision line\n got %s\nwant %s", tc.query, got, tc.want)
		}
	}
}

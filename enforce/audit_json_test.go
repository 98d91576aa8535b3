package enforce_test

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/callwarden/callwarden/enforce"
)

// marshalAudit is the encoding AppendCanonicalAudit must reproduce, bytes
// and errors: encoding/json of the record with its times in UTC, what
// every stored chain was hashed over.
func marshalAudit(r enforce.AuditRecord) ([]byte, error) {
	r.Time, r.RecordedAt, r.At = r.Time.UTC(), r.RecordedAt.UTC(), r.At.UTC()
	return json.Marshal(r)
}

func checkCanonical(t *testing.T, r enforce.AuditRecord) {
	t.Helper()
	want, wantErr := marshalAudit(r)
	got, err := enforce.AppendCanonicalAudit([]byte("prefix"), r)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("AppendCanonicalAudit error %v, encoding/json's %v", err, wantErr)
	}
	if err != nil {
		if string(got) != "prefix" {
			t.Fatalf("AppendCanonicalAudit failed but left %q, want the prefix untouched", got)
		}
		return
	}
	if !bytes.Equal(got, append([]byte("prefix"), want...)) {
		t.Fatalf("AppendCanonicalAudit:\n got %s\nwant prefix%s", got, want)
	}
	if raw, _ := enforce.CanonicalAudit(r); !bytes.Equal(raw, want) {
		t.Fatalf("CanonicalAudit:\n got %s\nwant %s", raw, want)
	}
}

func TestAppendCanonicalAudit(t *testing.T) {
	t.Run("AuditRecord has the fields the appender writes", func(t *testing.T) {
		want := []string{`time`, `source`, `user,omitempty`, `action`, `target,omitempty`, `queue,omitempty`, `team,omitempty`,
			`site,omitempty`, `decision`, `reason`, `profile,omitempty`, `caller,omitempty`, `pbx,omitempty`, `channels,omitempty`,
			`detail,omitempty`, `asked_by,omitempty`, `outcome,omitempty`, `session,omitempty`, `duration,omitempty`,
			`cause,omitempty`, `recorded_at,omitzero`, `assign_profile,omitempty`, `assign_queues,omitempty`, `at,omitzero`,
			`recording,omitempty`, `addr,omitempty`}
		var tags []string
		for f := range reflect.TypeFor[enforce.AuditRecord]().Fields() {
			tags = append(tags, f.Tag.Get("json"))
		}
		if !slices.Equal(tags, want) {
			t.Errorf("enforce.AuditRecord has JSON fields %q, AppendCanonicalAudit writes %q: update it", tags, want)
		}
	})
	paris := time.FixedZone("CET", 3600)
	at := time.Date(2026, 11, 29, 17, 4, 5, 123456700, paris)
	for _, tt := range []struct {
		name string
		r    enforce.AuditRecord
	}{
		{"a check, time in another zone", enforce.AuditRecord{Time: at, Source: "http", User: "alice", Action: "monitor.listen",
			Target: "2001", Queue: "sales", Decision: "allow", Reason: "granted", Profile: "supervisor", AskedBy: "loopback"}},
		{"the zero record", enforce.AuditRecord{}},
		{"every field", enforce.AuditRecord{Time: at, Source: "asterisk", User: "u", Action: "monitor.barge", Target: "t", Queue: "q",
			Team: "tm", Site: "s", Decision: "deny", Reason: "out_of_scope", Profile: "p", Caller: "*******1234", PBX: "asterisk:pbx1",
			Channels: []string{"PJSIP/1001-0001", "PJSIP/2001-0002"}, Detail: "d", AskedBy: "asterisk:pbx1", Outcome: "enforced",
			Session: "cw-1", Duration: 12.5, Cause: "supervisor_hangup", RecordedAt: at.Add(-time.Hour), AssignProfile: "teacher",
			AssignQueues: []string{"sales", "support"}, At: at.Add(time.Minute), Recording: "rec-1", Addr: "127.0.0.1:5555"}},
		{"whole seconds and durations", enforce.AuditRecord{Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Duration: 3}},
		{"tiny and huge durations", enforce.AuditRecord{Duration: 1e-9, Channels: []string{}}},
		{"huge duration", enforce.AuditRecord{Duration: 1e21}},
		{"negative duration", enforce.AuditRecord{Duration: -0.000001}},
		{"characters JSON escapes", enforce.AuditRecord{Source: "a\"b\\c", User: "<&>", Detail: "é\u2028\x01\n", Action: "\xff",
			Channels: []string{"ok", "tab\there"}, AssignQueues: []string{"<q>"}}},
		{"a year encoding/json refuses", enforce.AuditRecord{Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}},
		{"a year before zero", enforce.AuditRecord{At: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)}},
		{"a non-finite duration", enforce.AuditRecord{Duration: math.Inf(1)}},
		{"not a number", enforce.AuditRecord{Duration: math.NaN()}},
	} {
		t.Run(tt.name, func(t *testing.T) { checkCanonical(t, tt.r) })
	}
}

func FuzzAppendCanonicalAudit(f *testing.F) {
	f.Add(int64(1764435845123456789), "http", "alice", "monitor.listen", "sales", "<&>\"\\\x01é", "PJSIP/1001", 12.5, int64(0), "")
	f.Add(int64(0), "", "", "", "", "", "", 0.0, int64(-62135596800000000), "\xff\u2028")
	f.Fuzz(func(t *testing.T, ns int64, source, user, action, queue, detail, channel string, duration float64, recordedNs int64, addr string) {
		r := enforce.AuditRecord{Time: time.Unix(0, ns), Source: source, User: user, Action: action, Queue: queue, Detail: detail,
			Channels: []string{channel, user}, Duration: duration, RecordedAt: time.Unix(0, recordedNs).In(time.FixedZone("X", -7*3600)),
			Addr: addr, AssignQueues: []string{queue}}
		if channel == "" {
			r.Channels = nil
		}
		checkCanonical(t, r)
	})
}

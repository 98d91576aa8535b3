package checkapi

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"testing"

	"github.com/callwarden/callwarden/enforce"
)

// encodeAnswer is the encoding appendAnswer must reproduce: what
// httpauth.WriteJSON writes.
func encodeAnswer(t testing.TB, a *enforce.Answer) []byte {
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(a); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestAppendAnswer(t *testing.T) {
	t.Run("enforce.Answer has the fields the encoder writes", func(t *testing.T) {
		want := map[string][]string{
			"Answer":       {`decision`, `reason`, `profile`, `grant,omitempty`, `user`, `action`, `target,omitempty`, `assign,omitempty`, `notify_target`, `mask_digits`, `context_claimed,omitempty`},
			"AnswerTarget": {`queue,omitempty`, `team,omitempty`, `agent,omitempty`, `site,omitempty`},
			"AnswerAssign": {`profile`, `queues,omitempty`},
		}
		for _, typ := range []reflect.Type{reflect.TypeFor[enforce.Answer](), reflect.TypeFor[enforce.AnswerTarget](), reflect.TypeFor[enforce.AnswerAssign]()} {
			var tags []string
			for f := range typ.Fields() {
				tags = append(tags, f.Tag.Get("json"))
			}
			if !slices.Equal(tags, want[typ.Name()]) {
				t.Errorf("enforce.%s has JSON fields %q, appendAnswer writes %q: update it", typ.Name(), tags, want[typ.Name()])
			}
		}
	})
	grant := 2
	for _, tt := range []struct {
		name string
		a    enforce.Answer
	}{
		{"an allow with a grant and a target", enforce.Answer{Decision: "allow", Reason: "granted", Profile: "supervisor", Grant: &grant,
			User: "alice", Action: "monitor.listen", Target: &enforce.AnswerTarget{Queue: "sales", Agent: "2001"}, NotifyTarget: true, MaskDigits: 4}},
		{"a deny without profile, grant or target", enforce.Answer{Decision: "deny", Reason: "no_profile", User: "dave", Action: "monitor.listen"}},
		{"every target field and a claimed context", enforce.Answer{Decision: "deny", Reason: "out_of_scope", Profile: "p", User: "u", Action: "monitor.barge",
			Target: &enforce.AnswerTarget{Queue: "q", Team: "t", Agent: "a", Site: "s"}, ContextClaimed: true}},
		{"an assign with queues", enforce.Answer{Decision: "allow", Reason: "granted", Profile: "supervisor", User: "alice", Action: "profile.assign",
			Assign: &enforce.AnswerAssign{Profile: "teacher", Queues: []string{"sales", "support"}}}},
		{"an assign without queues", enforce.Answer{Decision: "deny", Reason: "out_of_scope", User: "alice", Action: "profile.assign",
			Assign: &enforce.AnswerAssign{Profile: "teacher"}}},
		{"characters JSON escapes", enforce.Answer{Decision: "deny", Reason: "a\"b\\c", Profile: "<&>", User: "é\u2028\x01", Action: "\xff",
			Target: &enforce.AnswerTarget{Team: "tab\there"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got, want := appendAnswer(nil, &tt.a), encodeAnswer(t, &tt.a); !bytes.Equal(got, want) {
				t.Errorf("appendAnswer:\n got %s\nwant %s", got, want)
			}
		})
	}
}

func FuzzAppendAnswer(f *testing.F) {
	f.Add("allow", "granted", "supervisor", "alice", "sales", "2001", "teacher", 1, true)
	f.Add("deny", "x<y", "", "\xff", "", "", "", -1, false)
	f.Fuzz(func(t *testing.T, decision, reason, profile, user, queue, agent, assign string, grant int, notify bool) {
		a := enforce.Answer{Decision: decision, Reason: reason, Profile: profile, User: user, Action: "monitor.listen", NotifyTarget: notify, MaskDigits: grant}
		if grant >= 0 {
			a.Grant = &grant
		}
		if queue != "" || agent != "" {
			a.Target = &enforce.AnswerTarget{Queue: queue, Agent: agent}
		}
		if assign != "" {
			a.Assign = &enforce.AnswerAssign{Profile: assign, Queues: []string{queue, agent}}
		}
		if got, want := appendAnswer(nil, &a), encodeAnswer(t, &a); !bytes.Equal(got, want) {
			t.Errorf("appendAnswer:\n got %s\nwant %s", got, want)
		}
	})
}

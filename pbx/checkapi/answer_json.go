package checkapi

import (
	"encoding/json"
	"net/http"
	"strconv"
	"sync"

	"github.com/callwarden/callwarden/enforce"
)

// answerBufs recycles the buffers check answers are encoded into.
var answerBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// writeAnswer answers 200 with a as JSON: the bytes json.NewEncoder(w).Encode(a)
// writes (httpauth.WriteJSON), trailing newline included, encoded without
// reflection into a pooled buffer and written at once. TestAppendAnswer
// holds the two encodings equal, and fails when enforce.Answer gains a
// field this encoder does not know.
func writeAnswer(w http.ResponseWriter, a *enforce.Answer) {
	bp := answerBufs.Get().(*[]byte)
	b := appendAnswer((*bp)[:0], a)
	// net/http adds the Content-Length of so short an answer itself.
	w.Header()["Content-Type"] = contentTypeJSON
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b) // a failed write means the client went away
	*bp = b
	answerBufs.Put(bp)
}

var contentTypeJSON = []string{"application/json"}

// appendAnswer appends a's JSON encoding and a newline to b, field by field
// in enforce.Answer's order, with its omitempty rules.
func appendAnswer(b []byte, a *enforce.Answer) []byte {
	b = append(b, `{"decision":`...)
	b = appendString(b, a.Decision)
	b = append(b, `,"reason":`...)
	b = appendString(b, a.Reason)
	b = append(b, `,"profile":`...)
	b = appendString(b, a.Profile)
	if a.Grant != nil {
		b = append(b, `,"grant":`...)
		b = strconv.AppendInt(b, int64(*a.Grant), 10)
	}
	b = append(b, `,"user":`...)
	b = appendString(b, a.User)
	b = append(b, `,"action":`...)
	b = appendString(b, a.Action)
	if t := a.Target; t != nil {
		b = append(b, `,"target":{`...)
		sep := false
		for _, f := range [...]struct{ name, v string }{{`"queue":`, t.Queue}, {`"team":`, t.Team}, {`"agent":`, t.Agent}, {`"site":`, t.Site}} {
			if f.v == "" {
				continue
			}
			if sep {
				b = append(b, ',')
			}
			b = append(b, f.name...)
			b = appendString(b, f.v)
			sep = true
		}
		b = append(b, '}')
	}
	if as := a.Assign; as != nil {
		b = append(b, `,"assign":{"profile":`...)
		b = appendString(b, as.Profile)
		if len(as.Queues) > 0 {
			b = append(b, `,"queues":[`...)
			for i, q := range as.Queues {
				if i > 0 {
					b = append(b, ',')
				}
				b = appendString(b, q)
			}
			b = append(b, ']')
		}
		b = append(b, '}')
	}
	b = append(b, `,"notify_target":`...)
	b = strconv.AppendBool(b, a.NotifyTarget)
	b = append(b, `,"mask_digits":`...)
	b = strconv.AppendInt(b, int64(a.MaskDigits), 10)
	if a.ContextClaimed {
		b = append(b, `,"context_claimed":true`...)
	}
	return append(b, "}\n"...)
}

// appendString appends s as a JSON string. The ids and codes of an answer
// are plain ASCII (enforce.CheckID); anything else is left to
// encoding/json, so the escaping (HTML characters, control characters,
// invalid UTF-8) is encoding/json's own.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

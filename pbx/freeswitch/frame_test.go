package freeswitch

import (
	"bufio"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestFrameParser(t *testing.T) {
	t.Run("connect reply of the real transcript", func(t *testing.T) {
		f, err := readFrame(bufio.NewReader(strings.NewReader(mustConnectReply(t))))
		if err != nil {
			t.Fatal(err)
		}
		if f.contentType() != typeReply || f.reply() != "+OK\n" || !f.ok() {
			t.Fatalf("content type %q reply %q", f.contentType(), f.reply())
		}
		ch, err := parseChannel(f.header)
		if err != nil {
			t.Fatal(err)
		}
		if ch.uuid != uuid || ch.name != "loopback/9198-a" || ch.vars["current_application_data"] != "127.0.0.1:8084 async full" {
			t.Fatalf("channel %+v", ch)
		}
	})
	t.Run("several messages in one read", func(t *testing.T) {
		r := bufio.NewReader(strings.NewReader("Content-Type: command/reply\nReply-Text: +OK bye\n\n" +
			"Content-Type: api/response\nContent-Length: 15\n\nloopback/9198-a" +
			"Content-Type: text/disconnect-notice\nContent-Length: 0\n\n"))
		var got []string
		for {
			f, err := readFrame(r)
			if err != nil {
				break
			}
			got = append(got, f.contentType()+"="+f.reply())
		}
		if strings.Join(got, ",") != "command/reply=+OK bye,api/response=loopback/9198-a,text/disconnect-notice=" {
			t.Fatalf("frames %q", got)
		}
	})
	t.Run("plain event values are percent-decoded, bad escapes kept", func(t *testing.T) {
		ev, err := parsePlainEvent([]byte("Event-Name: CHANNEL_EXECUTE\nApplication-Data: tone_stream%3A//%25(200,0,440)%3Bloops%3D1\nOdd: 100%\nnot a header\n\n"))
		if err != nil {
			t.Fatal(err)
		}
		if ev.get("Application-Data") != "tone_stream://%(200,0,440);loops=1" || ev.get("Odd") != "100%" || ev.skipped != 1 {
			t.Fatalf("%+v", ev)
		}
	})
	t.Run("a Content-Length beyond the stream is an error", func(t *testing.T) {
		if _, err := readFrame(bufio.NewReader(strings.NewReader("Content-Length: 99\n\nshort"))); err == nil {
			t.Fatal("no error")
		}
	})
}

// sequenceFixture reads esl-events-*-sequence.txt: arrival time and
// Event-Sequence, in arrival order.
func sequenceFixture(tb testing.TB, name string) (at []time.Duration, seqs []uint64) {
	for _, line := range strings.Split(MustFixture(tb, name), "\n") {
		fs := strings.Fields(line)
		if len(fs) < 3 || !strings.HasPrefix(fs[1], "seq=") {
			continue
		}
		d, err := time.ParseDuration(fs[0])
		if err != nil {
			tb.Fatalf("%s: %q: %v", name, line, err)
		}
		n, err := strconv.ParseUint(strings.TrimPrefix(fs[1], "seq="), 10, 64)
		if err != nil {
			tb.Fatal(err)
		}
		at, seqs = append(at, d), append(seqs, n)
	}
	if len(seqs) < 50 {
		tb.Fatalf("%s: only %d events", name, len(seqs))
	}
	return at, seqs
}

func TestSequencerRestoresTheOrderOfRealTranscripts(t *testing.T) {
	for _, name := range []string{"esl-events-all-sequence.txt", "esl-events-sip-sequence.txt"} {
		t.Run(name, func(t *testing.T) {
			at, seqs := sequenceFixture(t, name)
			disordered := false
			for i := 1; i < len(seqs); i++ {
				disordered = disordered || seqs[i] < seqs[i-1]
			}
			if !disordered {
				t.Fatal("the transcript arrives in order; it proves nothing")
			}
			var got []uint64
			late := 0
			s := &sequencer{window: 50 * time.Millisecond, deliver: func(e Event) { got = append(got, e.Seq) }, late: func() { late++ }}
			t0 := time.Unix(0, 0)
			for i := range seqs {
				now := t0.Add(at[i])
				s.flush(now)
				s.add(eventFromHeaders(map[string]string{"Event-Name": "X", "Event-Sequence": strconv.FormatUint(seqs[i], 10)}), now)
			}
			s.drain()
			if len(got) != len(seqs) || late != 0 {
				t.Fatalf("delivered %d of %d, %d late", len(got), len(seqs), late)
			}
			for i := 1; i < len(got); i++ {
				if got[i] <= got[i-1] {
					t.Fatalf("delivered out of order at %d: %d after %d", i, got[i], got[i-1])
				}
			}
		})
	}
}

func FuzzReadFrame(f *testing.F) {
	f.Add([]byte("Content-Type: auth/request\n\n"))
	f.Add([]byte("Content-Type: api/response\nContent-Length: 3\n\n+OK"))
	f.Add([]byte("Content-Length: 40\nContent-Type: text/event-plain\n\nEvent-Name: X\nEvent-Sequence: 7\nA: %41%zz\n\n"))
	f.Add([]byte("Content-Length: -1\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bufio.NewReader(strings.NewReader(string(b)))
		for i := 0; i < 8; i++ {
			fr, err := readFrame(r)
			if err != nil {
				return
			}
			if cl, ok := fr.header["Content-Length"]; ok {
				if n, _ := strconv.Atoi(cl); n != len(fr.body) {
					t.Fatalf("body %d bytes, Content-Length %q", len(fr.body), cl)
				}
			}
			if fr.contentType() == typeEventPlain {
				if ev, err := parsePlainEvent(fr.body); err == nil {
					_ = eventFromHeaders(ev.header)
				}
			}
		}
	})
}

func FuzzDecodeValue(f *testing.F) {
	f.Add("tone_stream%3A//%25(200,0,440)%3Bloops%3D1")
	f.Add("%2BOK%0A")
	f.Add("100%")
	f.Fuzz(func(t *testing.T, s string) {
		d := decodeValue(s)
		if len(d) > len(s) {
			t.Fatalf("decoded %q longer than %q", d, s)
		}
		// Encoding every byte and decoding gives the value back.
		var enc strings.Builder
		for i := 0; i < len(s); i++ {
			enc.WriteString("%" + strconv.FormatUint(uint64(s[i])>>4, 16) + strconv.FormatUint(uint64(s[i])&15, 16))
		}
		if got := decodeValue(enc.String()); got != s {
			t.Fatalf("round trip of %q gave %q", s, got)
		}
	})
}

func FuzzParseRequest(f *testing.F) {
	f.Add("check", "listen", "2001")
	f.Add("check", "recording.start", "")
	f.Add("monitor", "barge", "1001@pbx.example")
	f.Add("check", "listen", "2001\r\nexit")
	f.Fuzz(func(t *testing.T, action, mode, target string) {
		rq, err := parseRequest(map[string]string{varAction: action, varMode: mode, varTarget: target})
		if err != nil {
			return
		}
		if checkValue("target", rq.target) != nil || !validToken(rq.target) || !utf8.ValidString(rq.target) {
			t.Fatalf("accepted unsafe target %q", rq.target)
		}
		if rq.verb == verbCheck && !rq.action.Valid() {
			t.Fatalf("check of invalid action from %q", mode)
		}
	})
}

func FuzzCheckValue(f *testing.F) {
	f.Add("callwarden_reason granted")
	f.Add("x\r\nexit")
	f.Fuzz(func(t *testing.T, s string) {
		if checkValue("v", s) == nil && strings.ContainsAny(s, "\r\n\x00") {
			t.Fatalf("accepted %q", s)
		}
	})
}

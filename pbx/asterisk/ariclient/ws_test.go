package ariclient

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// serverFrame builds an unmasked server frame.
func serverFrame(fin bool, op byte, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	out := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		out = append(out, byte(n))
	case n <= 0xffff:
		out = append(out, 126, byte(n>>8), byte(n))
	default:
		out = append(out, 127, 0, 0, 0, 0, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(out, payload...)
}

// fakeARI upgrades GET /ari/events and writes frames, then reads what the client sends.
func fakeARI(t *testing.T, frames [][]byte, fromClient chan<- []byte) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "user" || p != "secret" {
			http.Error(w, `{"message":"Authentication required"}`, http.StatusUnauthorized)
			return
		}
		conn, rw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		defer conn.Close()
		_, _ = rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Accept: " + AcceptKey(r.Header.Get("Sec-WebSocket-Key")) + "\r\n\r\n")
		for _, f := range frames {
			_, _ = rw.Write(f)
		}
		_ = rw.Flush()
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			_, op, payload, err := ReadFrame(rw.Reader)
			if err != nil {
				return
			}
			fromClient <- append([]byte{op}, payload...)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestWebSocketReassemblesFragmentsAndAnswersPings(t *testing.T) {
	big := strings.Repeat("x", 70000) // needs the 64-bit length form
	fromClient := make(chan []byte, 10)
	srv := fakeARI(t, [][]byte{
		serverFrame(false, OpText, []byte(`{"type":"Chan`)),
		serverFrame(true, OpPing, []byte("hi")), // control frame between fragments
		serverFrame(true, OpContinuation, []byte(`nelCreated"}`)),
		serverFrame(true, OpText, []byte(big)),
		serverFrame(true, OpClose, []byte{0x03, 0xe8}),
	}, fromClient)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h := http.Header{}
	h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("user:secret")))
	ws, err := Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/ari/events", h)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()

	op, msg, err := ws.ReadMessage()
	if err != nil || op != OpText || string(msg) != `{"type":"ChannelCreated"}` {
		t.Fatalf("first message = %d %q %v", op, msg, err)
	}
	if got := <-fromClient; got[0] != OpPong || string(got[1:]) != "hi" {
		t.Fatalf("client answered the ping with %d %q, want pong \"hi\"", got[0], got[1:])
	}
	if _, msg, err = ws.ReadMessage(); err != nil || len(msg) != len(big) {
		t.Fatalf("large message: %d bytes, %v", len(msg), err)
	}
	if _, _, err = ws.ReadMessage(); !errors.Is(err, ErrClosed) {
		t.Fatalf("after close frame: %v, want ErrClosed", err)
	}
}

func TestWebSocketHandshakeRejectsWrongCredentials(t *testing.T) {
	srv := fakeARI(t, nil, make(chan []byte, 1))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/ari/events", nil)
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("dial without credentials: %v, want a 401 error", err)
	}
}

func TestClientFramesAreMaskedAndDecodeBack(t *testing.T) {
	for _, n := range []int{0, 125, 126, 65535, 65536} {
		payload := bytes.Repeat([]byte{0xab}, n)
		frame := AppendFrame(nil, OpBinary, payload, &[4]byte{1, 2, 3, 4})
		if frame[1]&0x80 == 0 {
			t.Fatalf("%d bytes: mask bit not set", n)
		}
		fin, op, got, err := ReadFrame(bytes.NewReader(frame))
		if err != nil || !fin || op != OpBinary || !bytes.Equal(got, payload) {
			t.Fatalf("%d bytes: fin=%v op=%d len=%d err=%v", n, fin, op, len(got), err)
		}
	}
}

// FuzzReadFrame: whatever the server sends, the reader returns a frame or an error,
// never panics nor allocates beyond the message bound.
func FuzzReadFrame(f *testing.F) {
	f.Add(serverFrame(true, OpText, []byte(`{"type":"StasisStart"}`)))
	f.Add(serverFrame(false, OpText, []byte("a")))
	f.Add([]byte{0x81, 127, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0x89, 0xfe, 0, 200})
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _, payload, err := ReadFrame(bufio.NewReader(bytes.NewReader(data)))
		if err == nil && len(payload) > MaxMessageSize {
			t.Fatalf("payload of %d bytes accepted", len(payload))
		}
	})
}

package freeswitch

import (
	"bufio"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/callwarden/callwarden/pbx/freeswitch/fstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// eventually polls cond until it holds or within has passed; it reports
// whether cond held. Callers fail with what they waited for.
func eventually(within time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(within); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

// fixtureDir holds the transcripts recorded from a real FreeSWITCH 1.10
// (../shared/fixtures/freeswitch beside the repository).
var fixtureDir = filepath.Join("..", "..", "..", "shared", "fixtures", "freeswitch")

// MustFixture reads a transcript; a missing one fails the test (never a
// skip).
func MustFixture(tb testing.TB, name string) string {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(fixtureDir, name))
	if err != nil {
		tb.Fatalf("fixture %s: %v (the transcripts live in ../shared/fixtures/freeswitch)", name, err)
	}
	return string(b)
}

// mustConnectReply is the connect reply of esl-transcript-outbound.txt,
// exactly as FreeSWITCH sent it, with extra header lines inserted before
// its Content-Type (the variables the dialplan sets).
func mustConnectReply(tb testing.TB, extra ...string) string {
	tb.Helper()
	t := MustFixture(tb, "esl-transcript-outbound.txt")
	_, rest, ok := strings.Cut(t, "<<< RECV outbound t=+0.025s (3712 bytes)\n")
	if !ok {
		tb.Fatal("no connect reply in esl-transcript-outbound.txt")
	}
	block, _, _ := strings.Cut(rest, "<<< END")
	if len(block) != 3712 {
		tb.Fatalf("connect reply is %d bytes, the transcript says 3712", len(block))
	}
	if len(extra) == 0 {
		return block
	}
	head, tail, _ := strings.Cut(block, "Content-Type: command/reply\n")
	return head + strings.Join(extra, "\n") + "\nContent-Type: command/reply\n" + tail
}

// fakeESL is an inbound ESL server speaking the framing of the
// transcripts: auth/request, command/reply, api/response, text/event-plain.
type fakeESL struct {
	tb       testing.TB
	ln       net.Listener
	password string
	// api answers "api <cmd>" on connection n (from 1); delay holds the
	// answer back.
	api func(n int, cmd string) (body string, delay time.Duration)

	mu       sync.Mutex
	conns    []net.Conn
	received []string // every command, in order
	wg       sync.WaitGroup
}

func newFakeESL(tb testing.TB, api func(n int, cmd string) (string, time.Duration)) *fakeESL {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	f := &fakeESL{tb: tb, ln: ln, password: "ClueCon", api: api}
	f.wg.Add(1)
	go f.accept()
	tb.Cleanup(f.close)
	return f
}

func (f *fakeESL) addr() string { return f.ln.Addr().String() }

func (f *fakeESL) close() {
	_ = f.ln.Close()
	f.mu.Lock()
	for _, c := range f.conns {
		_ = c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

func (f *fakeESL) commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.received...)
}

func (f *fakeESL) connections() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.conns)
}

// push writes an event to the newest connection.
func (f *fakeESL) push(body string) {
	f.mu.Lock()
	c := f.conns[len(f.conns)-1]
	f.mu.Unlock()
	_, _ = c.Write([]byte(frameText("text/event-plain", body)))
}

func frameText(contentType, body string) string {
	return "Content-Length: " + itoa(len(body)) + "\nContent-Type: " + contentType + "\n\n" + body
}

func itoa(n int) string { return strconv.Itoa(n) }

func (f *fakeESL) accept() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.mu.Lock()
		f.conns = append(f.conns, c)
		n := len(f.conns)
		f.mu.Unlock()
		f.wg.Add(1)
		go func() { defer f.wg.Done(); f.serve(n, c) }()
	}
}

func (f *fakeESL) serve(n int, c net.Conn) {
	defer c.Close()
	var wmu sync.Mutex
	write := func(s string) {
		wmu.Lock()
		defer wmu.Unlock()
		_, _ = c.Write([]byte(s))
	}
	var pending sync.WaitGroup
	defer pending.Wait()
	write("Content-Type: auth/request\n\n")
	r := bufio.NewReader(c)
	for {
		fr, err := fstest.ReadCommand(r)
		if err != nil {
			return
		}
		f.mu.Lock()
		f.received = append(f.received, fr)
		f.mu.Unlock()
		switch {
		case strings.HasPrefix(fr, "auth "):
			if strings.TrimPrefix(fr, "auth ") != f.password {
				write("Content-Type: command/reply\nReply-Text: -ERR invalid\n\n")
				return
			}
			write("Content-Type: command/reply\nReply-Text: +OK accepted\n\n")
		case strings.HasPrefix(fr, "event "):
			write("Content-Type: command/reply\nReply-Text: +OK event listener enabled plain\n\n")
		case strings.HasPrefix(fr, "api "):
			body, delay := f.api(n, strings.TrimPrefix(fr, "api "))
			pending.Add(1)
			go func() {
				defer pending.Done()
				time.Sleep(delay)
				write(frameText("api/response", body))
			}()
		case fr == "exit":
			write("Content-Type: command/reply\nReply-Text: +OK bye\n\n")
			return
		default:
			write("Content-Type: command/reply\nReply-Text: -ERR command not found\n\n")
		}
	}
}

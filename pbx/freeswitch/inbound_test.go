package freeswitch

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
)

func testInbound(addr string, onEvent func(Event)) (*inbound, *int) {
	drops := new(int)
	var mu sync.Mutex
	if onEvent == nil {
		onEvent = func(Event) {}
	}
	return newInbound(inboundOptions{
		Address: addr, Password: "ClueCon", Timeout: 150 * time.Millisecond,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		Window: 20 * time.Millisecond, KeepAlive: time.Hour, Logger: zap.NewNop(), OnEvent: onEvent,
		OnDropped: func(string) { mu.Lock(); *drops++; mu.Unlock() },
	}), drops
}

func runInbound(t *testing.T, in *inbound) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); in.run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func TestInboundCommandTimeout(t *testing.T) {
	t.Run("a late reply never reaches the next command", func(t *testing.T) {
		fake := newFakeESL(t, func(n int, cmd string) (string, time.Duration) {
			if n == 1 {
				return "STALE reply to " + cmd, 400 * time.Millisecond // after the 150ms timeout
			}
			return "+OK reply to " + cmd, 0
		})
		in, drops := testInbound(fake.addr(), nil)
		runInbound(t, in)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if _, err := in.api(ctx, "uuid_getvar", "first", "x"); err == nil {
			t.Fatal("the first command did not time out")
		}
		got, err := in.api(ctx, "uuid_getvar", "second", "x")
		if err != nil {
			t.Fatal(err)
		}
		if got != "+OK reply to uuid_getvar second x" {
			t.Fatalf("second command got %q; want its own reply", got)
		}
		if fake.connections() != 2 || *drops != 1 {
			t.Fatalf("connections %d, drops %d; want the timed-out connection dropped and redialled", fake.connections(), *drops)
		}
	})
}

func TestInboundRefusesControlCharacters(t *testing.T) {
	fake := newFakeESL(t, func(int, string) (string, time.Duration) { return "+OK", 0 })
	in, _ := testInbound(fake.addr(), nil)
	runInbound(t, in)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := in.api(ctx, "status"); err != nil { // connected and working
		t.Fatal(err)
	}
	before := len(fake.commands())
	for name, args := range map[string][]string{
		"CR LF in a target":    {"eavesdrop", "2001\r\n\r\napi hupall"},
		"LF in a variable":     {"uuid_setvar", "u", "callwarden_reason", "x\nexit"},
		"NUL in a value":       {"uuid_setvar", "u", "v", "a\x00b"},
		"TAB and other C0/DEL": {"uuid_setvar", "u", "v", "a\x7f"},
	} {
		_, err := in.api(ctx, args[0], args[1:]...)
		var ue *UnsafeValueError
		if !errors.As(err, &ue) {
			t.Errorf("%s: err = %v; want *UnsafeValueError", name, err)
		}
	}
	time.Sleep(50 * time.Millisecond)
	if got := fake.commands(); len(got) != before {
		t.Fatalf("refused values reached the server: %q", got[before:])
	}
}

func TestInboundDeliversEventsInSequenceOrder(t *testing.T) {
	fake := newFakeESL(t, func(int, string) (string, time.Duration) { return "+OK", 0 })
	var mu sync.Mutex
	var got []uint64
	in, _ := testInbound(fake.addr(), func(ev Event) { mu.Lock(); got = append(got, ev.Seq); mu.Unlock() })
	runInbound(t, in)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := in.api(ctx, "status"); err != nil {
		t.Fatal(err)
	}
	if cmds := fake.commands(); !strings.HasPrefix(cmds[1], "event plain CHANNEL_CREATE") {
		t.Fatalf("subscription = %q", cmds[1])
	}
	// The arrival order of the real transcript (esl-events-all-sequence):
	// the API event of originate (1389) comes after 1390..1415.
	for _, seq := range []string{"1390", "1392", "1389", "1394", "1393"} {
		fake.push("Event-Name: CHANNEL_STATE\nEvent-Sequence: " + seq + "\nChannel-Name: loopback/9198-a\n\n")
	}
	eventually(2*time.Second, func() bool { // the assertions below say what is missing
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 5
	})
	mu.Lock()
	defer mu.Unlock()
	want := []uint64{1389, 1390, 1392, 1393, 1394}
	if len(got) != len(want) {
		t.Fatalf("delivered %v; want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("delivered %v; want %v", got, want)
		}
	}
}

func TestInboundReconnectsAfterWrongPasswordWithBackoff(t *testing.T) {
	fake := newFakeESL(t, func(int, string) (string, time.Duration) { return "+OK", 0 })
	fake.password = "other"
	in, _ := testInbound(fake.addr(), nil)
	runInbound(t, in)
	if !eventually(2*time.Second, func() bool { return fake.connections() >= 3 }) {
		t.Fatalf("only %d attempts", fake.connections())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := in.api(ctx, "status"); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("api while refused = %v; want ErrNotConnected", err)
	}
}

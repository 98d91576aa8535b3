package checkapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// manager is the service manager's end of the notification socket: it
// collects the datagrams a Notifier sends.
type manager struct {
	path string
	conn *net.UnixConn
}

// MustListen opens a manager socket at path (a file in a temporary
// directory, or "@name" for the abstract namespace), closed when the test
// ends.
func mustListen(tb testing.TB, path string) *manager {
	tb.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		tb.Fatalf("listen %s: %v", path, err)
	}
	tb.Cleanup(func() { conn.Close() })
	return &manager{path: path, conn: conn}
}

// next returns the next datagram, or fails the test after timeout.
func (m *manager) next(tb testing.TB, timeout time.Duration) string {
	tb.Helper()
	buf := make([]byte, 4096)
	if err := m.conn.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		tb.Fatal(err)
	}
	n, err := m.conn.Read(buf)
	if err != nil {
		tb.Fatalf("no datagram within %s: %v", timeout, err)
	}
	return string(buf[:n])
}

// none fails the test if a datagram arrives within d.
func (m *manager) none(tb testing.TB, d time.Duration) {
	tb.Helper()
	buf := make([]byte, 4096)
	if err := m.conn.SetReadDeadline(time.Now().Add(d)); err != nil {
		tb.Fatal(err)
	}
	if n, err := m.conn.Read(buf); err == nil {
		tb.Fatalf("unexpected datagram %q", buf[:n])
	}
}

// socketPath is a path for a socket in a fresh directory, removed when the
// test ends. It is short: a socket path holds at most 107 bytes, which
// t.TempDir's, named after the test, can exceed.
func socketPath(tb testing.TB, name string) string {
	tb.Helper()
	dir, err := os.MkdirTemp("", "cw")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, name)
}

func mustNotifier(tb testing.TB, path string) *Notifier {
	tb.Helper()
	n, err := NewNotifier(path)
	if err != nil || n == nil {
		tb.Fatalf("NewNotifier(%q) = %v, %v", path, n, err)
	}
	return n
}

func TestNotify(t *testing.T) {
	t.Run("one datagram carries every state, newline separated", func(t *testing.T) {
		m := mustListen(t, socketPath(t, "notify"))
		n := mustNotifier(t, m.path)
		if err := n.Notify(context.Background(), NotifyReady, NotifyStatus("serving")); err != nil {
			t.Fatal(err)
		}
		if got := m.next(t, time.Second); got != "READY=1\nSTATUS=serving" {
			t.Errorf("datagram %q", got)
		}
	})
	t.Run("an abstract socket is reached by its @name", func(t *testing.T) {
		path := fmt.Sprintf("@callwarden-test-%d-%d", time.Now().UnixNano(), atomicSeq.Add(1))
		m := mustListen(t, path)
		if err := mustNotifier(t, path).Notify(context.Background(), NotifyStopping); err != nil {
			t.Fatal(err)
		}
		if got := m.next(t, time.Second); got != "STOPPING=1" {
			t.Errorf("datagram %q", got)
		}
	})
	t.Run("no socket means nothing to notify", func(t *testing.T) {
		n, err := NewNotifier("")
		if n != nil || err != nil {
			t.Fatalf("NewNotifier(\"\") = %v, %v; want nil, nil", n, err)
		}
		if err := n.Notify(context.Background(), NotifyReady); err != nil {
			t.Errorf("nil Notify: %v", err)
		}
		if err := n.WhenReady(context.Background(), func() error { return nil }, time.Millisecond); err != nil {
			t.Errorf("nil WhenReady: %v", err)
		}
	})
	t.Run("a relative path or a vsock address is refused", func(t *testing.T) {
		for _, p := range []string{"notify", "@", "vsock:2:1234"} {
			if _, err := NewNotifier(p); err == nil {
				t.Errorf("NewNotifier(%q) accepted", p)
			}
		}
	})
	t.Run("a socket nobody listens on is an error", func(t *testing.T) {
		n := mustNotifier(t, socketPath(t, "gone"))
		if err := n.Notify(context.Background(), NotifyReady); err == nil {
			t.Error("Notify to a missing socket succeeded")
		}
	})
}

var atomicSeq atomic.Int64

func TestStatusIsOneLine(t *testing.T) {
	if got := NotifyStatus("redis:\n  dial tcp 10.0.0.1:6379:\tconnection refused\n"); got != "STATUS=redis: dial tcp 10.0.0.1:6379: connection refused" {
		t.Errorf("Status = %q", got)
	}
}

// startWhenReady runs n.WhenReady(ready) until stop, which cancels it, checks that
// the manager hears STOPPING=1 next, and that WhenReady returns nil.
func startWhenReady(tb testing.TB, m *manager, n *Notifier, ready func() error, every time.Duration) (stop func()) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.WhenReady(ctx, ready, every) }()
	tb.Cleanup(cancel)
	return func() {
		tb.Helper()
		cancel()
		if got := m.next(tb, 2*time.Second); got != "STOPPING=1\nSTATUS=stopping" {
			tb.Fatalf("datagram %q, want STOPPING=1", got)
		}
		if err := <-done; err != nil {
			tb.Errorf("WhenReady: %v", err)
		}
	}
}

func TestWhenReady(t *testing.T) {
	t.Run("ready only once the check passes, stopping when the context ends", func(t *testing.T) {
		m := mustListen(t, socketPath(t, "notify"))
		n := mustNotifier(t, m.path)
		var calls atomic.Int64
		ready := func() error {
			// Not ready for the first three checks, the same reason twice.
			switch calls.Add(1) {
			case 1, 2:
				return errors.New("redis: connection refused")
			case 3:
				return errors.New("no profiles snapshot loaded")
			}
			return nil
		}
		stop := startWhenReady(t, m, n, ready, 5*time.Millisecond)

		for _, want := range []string{
			"STATUS=not ready: redis: connection refused",
			"STATUS=not ready: no profiles snapshot loaded",
			"READY=1\nSTATUS=ready",
		} {
			if got := m.next(t, 2*time.Second); got != want {
				t.Fatalf("datagram %q, want %q", got, want)
			}
		}
		m.none(t, 30*time.Millisecond)
		if c := calls.Load(); c != 4 {
			t.Errorf("ready checked %d times after READY, want it no longer checked (4 in all)", c)
		}
		stop()
	})
	t.Run("stopping before ever ready sends no READY", func(t *testing.T) {
		m := mustListen(t, socketPath(t, "notify"))
		n := mustNotifier(t, m.path)
		stop := startWhenReady(t, m, n, func() error { return errors.New("store unavailable") }, time.Millisecond)
		if got := m.next(t, 2*time.Second); !strings.HasPrefix(got, "STATUS=not ready") {
			t.Fatalf("datagram %q", got)
		}
		stop() // the next datagram is STOPPING=1: no READY came in between
	})
	t.Run("a manager gone returns the error at once", func(t *testing.T) {
		n := mustNotifier(t, socketPath(t, "gone"))
		if err := n.WhenReady(context.Background(), func() error { return nil }, time.Millisecond); err == nil {
			t.Error("WhenReady without a manager socket returned nil")
		}
	})
	t.Run("a zero interval is refused", func(t *testing.T) {
		n := mustNotifier(t, socketPath(t, "notify"))
		if err := n.WhenReady(context.Background(), func() error { return nil }, 0); err == nil {
			t.Error("interval 0 accepted")
		}
	})
}

package checkapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// The service manager's readiness protocol (sd_notify(3)) for a daemon
// started by a Type=notify unit: the daemon tells the manager why it is
// not ready yet (STATUS=), that it is ready (READY=1), what /readyz
// answers, and that it is stopping (STOPPING=1), one datagram each, over
// the unix datagram socket the manager names in $NOTIFY_SOCKET. It reads
// no environment (cmd passes the socket's path).

// The states sent to the service manager (sd_notify(3)).
const (
	NotifyReady    = "READY=1"
	NotifyStopping = "STOPPING=1"
	statusPrefix   = "STATUS="
)

// sendTimeout bounds one datagram when the context has no earlier
// deadline: the manager reads its socket at once, so a write that blocks
// this long means nobody is reading.
const sendTimeout = time.Second

// Notifier sends state changes to the service manager. The nil *Notifier,
// what NewNotifier returns when the process was not started by a manager
// that listens, sends nothing and never fails.
type Notifier struct {
	addr *net.UnixAddr
}

// NewNotifier returns a Notifier of the socket path the manager gave in
// $NOTIFY_SOCKET: an absolute path, or an abstract socket written "@name".
// An empty path returns nil (nothing to notify). Any other form (systemd's
// "vsock:" addresses) is an error.
func NewNotifier(path string) (*Notifier, error) {
	switch {
	case path == "":
		return nil, nil
	case strings.HasPrefix(path, "/"), strings.HasPrefix(path, "@") && len(path) > 1:
		// Go maps a leading '@' to the abstract namespace's NUL byte.
		return &Notifier{addr: &net.UnixAddr{Name: path, Net: "unixgram"}}, nil
	}
	return nil, fmt.Errorf("NOTIFY_SOCKET %q: want an absolute path or an abstract socket (@name)", path)
}

// Notify sends states (e.g. NotifyReady, NotifyStatus("...")) in one datagram,
// within ctx's deadline or sendTimeout, whichever comes first.
func (n *Notifier) Notify(ctx context.Context, states ...string) error {
	if n == nil || len(states) == 0 {
		return nil
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unixgram", n.addr.Name)
	if err != nil {
		return fmt.Errorf("notify %s: %w", n.addr.Name, err)
	}
	defer conn.Close()
	deadline := time.Now().Add(sendTimeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	if err := conn.SetWriteDeadline(deadline); err != nil {
		return fmt.Errorf("notify %s: %w", n.addr.Name, err)
	}
	if _, err := conn.Write([]byte(strings.Join(states, "\n"))); err != nil {
		return fmt.Errorf("notify %s: %w", n.addr.Name, err)
	}
	return nil
}

// Status is the STATUS= state carrying msg, made one line: the protocol
// separates states with newlines.
func NotifyStatus(msg string) string {
	return statusPrefix + strings.Join(strings.Fields(msg), " ")
}

// WhenReady follows the daemon's life for the manager: while ready fails it
// sends its error as STATUS= (each time the error changes); the first time
// ready succeeds (checked every interval) it sends READY=1 with a STATUS=
// saying so; when ctx ends it sends STOPPING=1 and returns. ready is what
// the daemon's /readyz answers, so the manager's "started" means what a
// load balancer's probe means. It returns early only when a datagram
// cannot be sent, with that error; ctx's end is not an error.
func (n *Notifier) WhenReady(ctx context.Context, ready func() error, interval time.Duration) error {
	if n == nil {
		return nil
	}
	if interval <= 0 {
		return errors.New("checkapi: WhenReady: interval must be positive")
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var last string
	for {
		err := ready()
		if err == nil {
			if err := n.Notify(ctx, NotifyReady, NotifyStatus("ready")); err != nil {
				return err
			}
			break
		}
		if msg := "not ready: " + err.Error(); msg != last {
			last = msg
			if err := n.Notify(ctx, NotifyStatus(msg)); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return n.stopping(ctx)
		case <-tick.C:
		}
	}
	<-ctx.Done()
	return n.stopping(ctx)
}

// stopping sends STOPPING=1 after ctx ended, on a context of its own.
func (n *Notifier) stopping(ctx context.Context) error {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sendTimeout)
	defer cancel()
	return n.Notify(sctx, NotifyStopping, NotifyStatus("stopping"))
}

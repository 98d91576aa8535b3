package freeswitch

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/percipia/eslgo/command"
	"go.uber.org/zap"
)

// ErrNotConnected is returned by a command sent while the inbound
// connection is down and does not come back within the command's context.
var ErrNotConnected = errors.New("freeswitch: inbound ESL connection is down")

// ErrCommandFailed wraps a "-ERR" answer of FreeSWITCH.
var ErrCommandFailed = errors.New("freeswitch: command failed")

// subscribedEvents are the events the inbound connection asks for: what
// call tracking and the watchdog need (channels, bridges, applications
// such as eavesdrop, media bugs, recordings, background jobs).
var subscribedEvents = []string{
	"CHANNEL_CREATE", "CHANNEL_ANSWER", "CHANNEL_BRIDGE", "CHANNEL_UNBRIDGE",
	"CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE", "CHANNEL_EXECUTE", "CHANNEL_EXECUTE_COMPLETE",
	"MEDIA_BUG_START", "MEDIA_BUG_STOP", "RECORD_START", "RECORD_STOP", "BACKGROUND_JOB",
}

// knownEvent reports whether name is one the adapter subscribed to; any
// other is ignored and counted.
func knownEvent(name string) bool {
	return slices.Contains(subscribedEvents, name) || slices.Contains(modelEvents, name)
}

// inboundOptions configure the inbound connection.
type inboundOptions struct {
	Address, Password string
	// Timeout bounds the dial, the auth and every command.
	Timeout time.Duration
	// MinBackoff and MaxBackoff bound the reconnect delay.
	MinBackoff, MaxBackoff time.Duration
	// Window is how long an event is held to be put in Event-Sequence
	// order.
	Window time.Duration
	// KeepAlive is how often an idle connection is probed (a dead
	// connection eslgo does not notice is then dropped).
	KeepAlive time.Duration
	Logger    *zap.Logger
	// OnEvent receives the events in Event-Sequence order; it may be
	// called from several goroutines for late events, never concurrently
	// for ordered ones.
	OnEvent func(Event)
	// Hooks for metrics; each may be nil.
	OnDropped func(reason string)
	OnIgnored func(kind string, n int)
	OnLate    func()
	OnUp      func(up bool)
	// OnReset is called before each connection is made, once every event
	// of the previous one was delivered: what those said may be out of
	// date by now. It may be nil.
	OnReset func()
	// Resync, if set, is handed `show channels as json` once each
	// connection is up and subscribed, after the events FreeSWITCH sent
	// before its answer were delivered (they are held for ordering), so
	// that OnEvent has seen them first. While it has not succeeded it is
	// tried again at every KeepAlive. Once it has, a second listing
	// (again) follows at the first KeepAlive listingLag later: FreeSWITCH
	// writes its rows about a second late.
	Resync func(listing string, again bool) error
}

// inbound keeps one authenticated, subscribed ESL connection to
// FreeSWITCH up and sends commands over it, one at a time.
type inbound struct {
	o   inboundOptions
	seq *sequencer

	mu   sync.Mutex
	cur  *eslConn      // nil while down
	upCh chan struct{} // closed while cur != nil
}

// eslConn is one inbound connection: a reader goroutine hands replies to
// the one waiting command and events to the sequencer. Commands are
// serialized; a command that fails drops the connection, so a late reply
// can never be read as the next command's.
type eslConn struct {
	cmdMu   sync.Mutex
	c       net.Conn
	replies chan frame
	done    chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
}

// drop closes the connection (once) and wakes whoever waits on done.
func (e *eslConn) drop() {
	e.once.Do(func() {
		close(e.done)
		_ = e.c.Close()
	})
}

// close drops the connection and waits for its reader.
func (e *eslConn) close() {
	e.drop()
	e.wg.Wait()
}

func newInbound(o inboundOptions) *inbound {
	in := &inbound{o: o, upCh: make(chan struct{})}
	in.seq = &sequencer{window: o.Window, deliver: o.OnEvent, late: o.OnLate}
	return in
}

// run keeps the connection up until ctx ends, reconnecting with
// exponential backoff, and delivers the events in order.
func (in *inbound) run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); in.flushLoop(ctx) }()
	defer wg.Wait()
	backoff := in.o.MinBackoff
	for ctx.Err() == nil {
		// The previous connection's held events go out now, and its
		// Event-Sequence is forgotten: FreeSWITCH may have restarted and
		// count from 1 again.
		in.seq.reset()
		if in.o.OnReset != nil {
			in.o.OnReset()
		}
		c, err := in.dial(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			in.o.Logger.Warn("cannot connect to FreeSWITCH ESL; retrying", zap.String("address", in.o.Address),
				zap.Duration("backoff", backoff), zap.Error(err))
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, in.o.MaxBackoff)
			continue
		}
		backoff = in.o.MinBackoff
		in.setCurrent(c)
		in.o.Logger.Info("connected to FreeSWITCH ESL", zap.String("address", in.o.Address))
		in.hold(ctx, c)
		in.setCurrent(nil)
		c.close()
		if ctx.Err() == nil {
			in.o.Logger.Warn("FreeSWITCH ESL connection lost; reconnecting", zap.String("address", in.o.Address))
		}
	}
}

// hold waits while c is up, probing it every KeepAlive; it resyncs first,
// and again at each probe until a resync succeeded.
func (in *inbound) hold(ctx context.Context, c *eslConn) {
	synced := in.resync(ctx, c, false)
	again, refined := time.Now().Add(listingLag), false
	t := time.NewTicker(in.o.KeepAlive)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.done:
			return
		case now := <-t.C:
			switch {
			case !synced:
				synced = in.resync(ctx, c, false)
				again = time.Now().Add(listingLag)
			case !refined && now.After(again):
				refined = in.resync(ctx, c, true)
			}
			if _, err := in.send(ctx, c, "api", "status"); err != nil {
				in.o.Logger.Warn("FreeSWITCH ESL keepalive failed", zap.Error(err))
				return
			}
		}
	}
}

// listingLag is how long after a first listing the second is made:
// FreeSWITCH writes its `show channels` rows about a second late.
const listingLag = 2 * time.Second

// resync lists the channels on c and hands the listing to Resync once the
// events sent before it were delivered; it reports whether it succeeded.
func (in *inbound) resync(ctx context.Context, c *eslConn, again bool) bool {
	if in.o.Resync == nil {
		return true
	}
	out, err := in.send(ctx, c, "show", "channels", "as", "json")
	if err == nil {
		// An event FreeSWITCH sent before its answer (read before it) may
		// still be held by the sequencer: wait until it is delivered, so it
		// wins over the listing (a channel destroyed meanwhile stays
		// destroyed).
		answered := time.Now()
		t := time.NewTicker(in.flushTick())
		defer t.Stop()
		for !in.seq.settled(answered) {
			select {
			case <-ctx.Done():
				return false
			case <-c.done:
				return false
			case <-t.C:
			}
		}
		err = in.o.Resync(out, again)
	}
	if err != nil {
		in.o.Logger.Warn("cannot list FreeSWITCH's channels; the channel model stays unused until the next try", zap.Error(err))
		return false
	}
	return true
}

// flushTick is how often held events are looked at.
func (in *inbound) flushTick() time.Duration { return max(in.o.Window/4, time.Millisecond) }

// live reports whether the connection is up now: while it is not, nothing
// learnt from its events may be relied on.
func (in *inbound) live() bool {
	in.mu.Lock()
	c := in.cur
	in.mu.Unlock()
	if c == nil {
		return false
	}
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

func (in *inbound) flushLoop(ctx context.Context) {
	tick := in.flushTick()
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			in.seq.drain()
			return
		case now := <-t.C:
			in.seq.flush(now)
		}
	}
}

func (in *inbound) setCurrent(c *eslConn) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if c != nil {
		in.cur = c
		close(in.upCh)
	} else {
		in.downLocked()
	}
	if in.o.OnUp != nil {
		in.o.OnUp(c != nil)
	}
}

// downLocked forgets the current connection, if any, and gives waiters a
// fresh channel that the next connection closes. in.mu must be held.
func (in *inbound) downLocked() {
	if in.cur != nil {
		in.cur = nil
		in.upCh = make(chan struct{})
	}
}

// current waits until the connection is up or ctx ends.
func (in *inbound) current(ctx context.Context) (*eslConn, error) {
	for {
		in.mu.Lock()
		c, up := in.cur, in.upCh
		if c != nil {
			select {
			case <-c.done:
				// Dropped (a command timed out on it) but not yet replaced
				// by run: wait for the next connection instead of failing
				// the command on the dead one.
				in.downLocked()
				c, up = nil, in.upCh
			default:
			}
		}
		in.mu.Unlock()
		if c != nil {
			return c, nil
		}
		select {
		case <-up:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", ErrNotConnected, ctx.Err())
		}
	}
}

// dial connects, authenticates and subscribes within Timeout.
func (in *inbound) dial(ctx context.Context) (*eslConn, error) {
	if err := checkValues("ESL password", in.o.Password); err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, in.o.Timeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(dctx, "tcp", in.o.Address)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", in.o.Address, err)
	}
	ec := &eslConn{c: nc, replies: make(chan frame, 1), done: make(chan struct{})}
	r := bufio.NewReader(nc)
	// FreeSWITCH speaks first: auth/request.
	_ = nc.SetReadDeadline(time.Now().Add(in.o.Timeout))
	f, err := readFrame(r)
	if err != nil || f.contentType() != typeAuthRequest {
		_ = nc.Close()
		return nil, fmt.Errorf("dial %s: no auth request: %v %w", in.o.Address, f.contentType(), err)
	}
	_ = nc.SetReadDeadline(time.Time{})
	ec.wg.Add(1)
	go func() { defer ec.wg.Done(); in.readLoop(ec, r) }()
	resp, err := in.sendCommand(dctx, ec, command.Auth{Password: in.o.Password})
	if err == nil && !resp.ok() {
		err = fmt.Errorf("%w: auth: %s", ErrCommandFailed, resp.reply())
	}
	if err == nil {
		resp, err = in.sendCommand(dctx, ec, command.Event{Format: "plain", Listen: slices.Concat(subscribedEvents, modelEvents)})
		if err == nil && !resp.ok() {
			err = fmt.Errorf("%w: event plain: %s", ErrCommandFailed, resp.reply())
		}
	}
	if err != nil {
		ec.close()
		return nil, err
	}
	return ec, nil
}

// readLoop reads frames until the connection ends: replies go to the
// waiting command, plain events to the sequencer; anything else is
// ignored and counted.
func (in *inbound) readLoop(ec *eslConn, r *bufio.Reader) {
	defer ec.drop()
	for {
		f, err := readFrame(r)
		if err != nil {
			return
		}
		if f.skipped > 0 && in.o.OnIgnored != nil {
			in.o.OnIgnored("header", f.skipped)
		}
		switch f.contentType() {
		case typeReply, typeAPIResponse:
			select {
			case ec.replies <- f:
			default:
				// Nobody asked: the stream is out of step.
				return
			}
		case typeEventPlain:
			ev, err := parsePlainEvent(f.body)
			if err != nil {
				if in.o.OnIgnored != nil {
					in.o.OnIgnored("frame", 1)
				}
				continue
			}
			if ev.skipped > 0 && in.o.OnIgnored != nil {
				in.o.OnIgnored("header", ev.skipped)
			}
			in.seq.add(eventFromHeaders(ev.header), time.Now())
		case typeDisconnect:
			return
		default:
			if in.o.OnIgnored != nil {
				in.o.OnIgnored("frame", 1)
			}
		}
	}
}

// api sends "api <cmd> <args...>" and returns the response body. Every
// value is checked first; nothing is sent if one is unsafe.
func (in *inbound) api(ctx context.Context, cmd string, args ...string) (string, error) {
	if err := checkValues("api "+cmd, append([]string{cmd}, args...)...); err != nil {
		return "", err
	}
	c, err := in.current(ctx)
	if err != nil {
		return "", err
	}
	return in.send(ctx, c, cmd, args...)
}

func (in *inbound) send(ctx context.Context, c *eslConn, cmd string, args ...string) (string, error) {
	if cmd == "api" && len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	resp, err := in.sendCommand(ctx, c, command.API{Command: cmd, Arguments: strings.Join(args, " ")})
	if err != nil {
		return "", err
	}
	body := string(resp.body)
	if strings.HasPrefix(body, "-ERR") {
		return body, fmt.Errorf("%w: api %s: %s", ErrCommandFailed, cmd, strings.TrimSpace(body))
	}
	return body, nil
}

// sendCommand sends one command, built by eslgo's command package (which
// interpolates values unescaped: every value was checked before), and
// waits for its reply within Timeout. Any failure, a timeout above all,
// drops the connection: a late reply would otherwise be read as the next
// command's (eslgo's own Conn has that flaw).
func (in *inbound) sendCommand(ctx context.Context, c *eslConn, cmd command.Command) (frame, error) {
	c.cmdMu.Lock()
	defer c.cmdMu.Unlock()
	fail := func(err error) (frame, error) {
		c.drop()
		if in.o.OnDropped != nil {
			in.o.OnDropped("command_failed")
		}
		return frame{}, fmt.Errorf("freeswitch: command failed, connection dropped: %w", err)
	}
	select {
	case <-c.done:
		return frame{}, ErrNotConnected
	default:
	}
	cctx, cancel := context.WithTimeout(ctx, in.o.Timeout)
	defer cancel()
	deadline, _ := cctx.Deadline()
	_ = c.c.SetWriteDeadline(deadline)
	if _, err := c.c.Write([]byte(cmd.BuildMessage() + "\n\n")); err != nil {
		return fail(err)
	}
	select {
	case f := <-c.replies:
		return f, nil
	case <-c.done:
		return frame{}, fmt.Errorf("%w: connection closed while waiting for a reply", ErrNotConnected)
	case <-cctx.Done():
		return fail(cctx.Err())
	}
}

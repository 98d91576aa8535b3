package freeswitch

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"
)

// ErrHungUp is returned by a command on an outbound connection whose
// channel hung up (a disconnect notice came instead of the reply).
var ErrHungUp = errors.New("freeswitch: channel hung up")

// outboundServer accepts the connections of the dialplan's socket
// application. It owns its listener (eslgo's outbound server can be
// neither stopped nor handed a connection) and tracks every connection so
// that close stops accepting and waits for them.
type outboundServer struct {
	ln      net.Listener
	handle  func(ctx context.Context, c *outConn)
	timeout time.Duration // per command
	connFor time.Duration // whole connection

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
	ctx    context.Context
	cancel context.CancelFunc
}

func newOutboundServer(ln net.Listener, timeout, connFor time.Duration, handle func(context.Context, *outConn)) *outboundServer {
	ctx, cancel := context.WithCancel(context.Background())
	return &outboundServer{ln: ln, handle: handle, timeout: timeout, connFor: connFor,
		conns: make(map[net.Conn]struct{}), ctx: ctx, cancel: cancel}
}

// serve accepts until close; it returns nil after close, else the
// listener's error.
func (s *outboundServer) serve() error {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("freeswitch: outbound accept: %w", err)
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = c.Close()
			return nil
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				_ = c.Close()
			}()
			// The whole conversation has a deadline: a silent FreeSWITCH
			// never holds a goroutine.
			// A monitor session lifts the limit (outConn.unlimit) once its
			// eavesdrop runs: it lasts as long as the supervisor stays.
			_ = c.SetDeadline(time.Now().Add(s.connFor))
			ctx, cancel := context.WithCancel(s.ctx)
			defer cancel()
			limit := time.AfterFunc(s.connFor, cancel)
			defer limit.Stop()
			s.handle(ctx, &outConn{c: c, r: bufio.NewReader(c), timeout: s.timeout, limit: limit})
		}()
	}
}

// close stops accepting and waits for the connections until ctx ends;
// then it cuts the rest and waits for their handlers to return.
func (s *outboundServer) close(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	err := s.ln.Close()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		s.cancel()
		return err
	case <-ctx.Done():
	}
	s.cancel()
	s.mu.Lock()
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	<-done
	return errors.Join(err, fmt.Errorf("freeswitch: outbound connections cut at shutdown: %w", ctx.Err()))
}

// outConn is one outbound connection: commands are sent one at a time and
// each reads its own reply; events that arrive in between are kept for
// next (a monitor session subscribes to its channel's events) up to
// maxPending, and counted in skipped beyond.
type outConn struct {
	c       net.Conn
	r       *bufio.Reader
	timeout time.Duration
	// skipped counts frames and header lines that were ignored.
	skipped int
	// limit cancels the connection's context after ConnTimeout.
	limit *time.Timer
	// pending holds the events read while waiting for a reply.
	pending []frame
}

// maxPending bounds the events kept while a command waits for its reply.
const maxPending = 64

// unlimit lifts the whole-connection limit: the connection then lasts
// until the channel hangs up or the server shuts down.
func (o *outConn) unlimit() {
	if o.limit != nil {
		o.limit.Stop()
	}
}

// next returns the next event (or disconnect notice: ErrHungUp) by
// deadline; a zero deadline waits until ctx ends.
func (o *outConn) next(ctx context.Context, deadline time.Time) (frame, error) {
	if len(o.pending) > 0 {
		f := o.pending[0]
		o.pending = o.pending[1:]
		return f, nil
	}
	if err := o.c.SetDeadline(deadline); err != nil {
		return frame{}, err
	}
	// The end of ctx cuts the read short; checked after SetDeadline, so an
	// end that came just before is not overwritten.
	stop := context.AfterFunc(ctx, func() { _ = o.c.SetDeadline(time.Now()) })
	defer stop()
	if err := ctx.Err(); err != nil {
		return frame{}, err
	}
	for {
		f, err := readFrame(o.r)
		if err != nil {
			return frame{}, fmt.Errorf("freeswitch: read event: %w", err)
		}
		o.skipped += f.skipped
		switch f.contentType() {
		case typeEventPlain:
			return f, nil
		case typeDisconnect:
			return f, ErrHungUp
		default:
			o.skipped++
		}
	}
}

// command sends the lines of one command (each checked first) and waits
// for its command/reply or api/response within timeout. Any error leaves
// the stream out of step: the caller must drop the connection.
func (o *outConn) command(ctx context.Context, lines ...string) (frame, error) {
	fs, err := o.pipeline(ctx, lines)
	if len(fs) == 0 {
		return frame{}, err
	}
	return fs[0], err
}

// pipeline sends several commands in one write and reads their replies,
// in order, within timeout: FreeSWITCH runs an outbound connection's
// commands one after the other and answers each in turn, so waiting for
// each reply before sending the next only adds round trips. Every value of
// every command is checked before anything is sent. It returns the replies
// read (the last one the disconnect notice, with ErrHungUp); any error
// leaves the stream out of step: the caller must drop the connection.
func (o *outConn) pipeline(ctx context.Context, cmds ...[]string) ([]frame, error) {
	var b strings.Builder
	for _, lines := range cmds {
		if err := checkValues("command", lines...); err != nil {
			return nil, err
		}
		b.WriteString(strings.Join(lines, "\n"))
		b.WriteString("\n\n")
	}
	deadline := time.Now().Add(o.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := o.c.SetDeadline(deadline); err != nil {
		return nil, err
	}
	if _, err := o.c.Write([]byte(b.String())); err != nil {
		return nil, fmt.Errorf("freeswitch: send %q: %w", cmds[0][0], err)
	}
	out := make([]frame, 0, len(cmds))
	for _, lines := range cmds {
		f, err := o.reply(lines[0])
		if err != nil {
			if errors.Is(err, ErrHungUp) {
				out = append(out, f)
			}
			return out, err
		}
		out = append(out, f)
	}
	return out, nil
}

// reply reads up to the reply to the command whose first line is first,
// keeping the events read before it for next.
func (o *outConn) reply(first string) (frame, error) {
	for {
		f, err := readFrame(o.r)
		if err != nil {
			return frame{}, fmt.Errorf("freeswitch: reply to %q: %w", first, err)
		}
		o.skipped += f.skipped
		switch f.contentType() {
		case typeReply, typeAPIResponse:
			return f, nil
		case typeDisconnect:
			return f, ErrHungUp
		case typeEventPlain:
			if len(o.pending) < maxPending {
				o.pending = append(o.pending, f)
			} else {
				o.skipped++
			}
		default:
			o.skipped++
		}
	}
}

// replyErr is the error a reply to the command lines carries: an api
// command's -ERR or -USAGE answer, any other command's reply but +OK.
func replyErr(lines []string, f frame) error {
	if strings.HasPrefix(lines[0], "api ") {
		body := string(f.body)
		if strings.HasPrefix(body, "-ERR") || strings.HasPrefix(body, "-USAGE") {
			return fmt.Errorf("%w: api %s: %s", ErrCommandFailed, strings.Fields(lines[0])[1], strings.TrimSpace(body))
		}
		return nil
	}
	if !f.ok() {
		return fmt.Errorf("%w: %s: %s", ErrCommandFailed, lines[0], strings.TrimSpace(f.reply()))
	}
	return nil
}

// reply is the text of a reply frame: Reply-Text, else the body.
func (f frame) reply() string {
	if v, ok := f.header["Reply-Text"]; ok {
		return v
	}
	return string(f.body)
}

func (f frame) ok() bool { return strings.HasPrefix(f.reply(), "+OK") }

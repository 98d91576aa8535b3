package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ESL is a minimal FreeSWITCH event socket client for the lab's tests: inbound
// (DialESL: auth, api, sendmsg) and outbound (the connection FreeSWITCH's `socket`
// application opens to an OutboundListener). It is the tests' own view of FreeSWITCH,
// deliberately independent of callwarden's adapter (pbx/freeswitch), so the suite
// checks the adapter against the real server rather than against itself. One command
// runs at a time; events that arrive while a command waits for its reply are kept for
// NextEvent.
type ESL struct {
	conn net.Conn
	r    *bufio.Reader

	mu     sync.Mutex
	events []ESLMessage
}

// ESLMessage is one ESL frame: its headers (values as sent) and its body.
type ESLMessage struct {
	Headers map[string]string
	Body    string
}

// Header returns the header's value, percent-decoded as FreeSWITCH encodes channel
// data and plain events ("%2BOK%0A" is "+OK\n").
func (m ESLMessage) Header(name string) string {
	v := m.Headers[name]
	if d, err := url.PathUnescape(v); err == nil {
		return d
	}
	return v
}

// Var returns the channel variable name of a channel-data frame (header variable_<name>).
func (m ESLMessage) Var(name string) string { return m.Header("variable_" + name) }

// EventHeaders parses the body of a "text/event-plain" frame into its headers,
// percent-decoded.
func (m ESLMessage) EventHeaders() map[string]string {
	h := map[string]string{}
	for _, line := range strings.Split(m.Body, "\n") {
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			continue
		}
		if d, err := url.PathUnescape(v); err == nil {
			v = d
		}
		h[k] = v
	}
	return h
}

// ErrDisconnected wraps FreeSWITCH's notice that it closes the connection (it stops,
// or its ACL refuses the connection).
var ErrDisconnected = errors.New("freeswitch closed the connection")

// ErrESL wraps a "-ERR ..." or "-USAGE ..." answer of FreeSWITCH.
var ErrESL = errors.New("freeswitch refused")

// DialESL connects to FreeSWITCH's inbound event socket at addr and authenticates.
func DialESL(ctx context.Context, addr, password string) (*ESL, error) {
	ctx, cancel := withDeadline(ctx)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("esl dial %s: %w", addr, err)
	}
	c := NewESL(conn)
	msg, err := c.read(ctx)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("esl %s: greeting: %w", addr, err)
	}
	if ct := msg.Headers["Content-Type"]; ct != "auth/request" {
		conn.Close()
		return nil, fmt.Errorf("esl %s: greeting is %q, want auth/request (an ACL refusal reads text/rude-rejection)", addr, ct)
	}
	if _, err := c.Command(ctx, "auth "+password); err != nil {
		conn.Close()
		return nil, fmt.Errorf("esl %s: auth: %w", addr, err)
	}
	return c, nil
}

// NewESL wraps an ESL connection already past any greeting (e.g. an outbound one).
func NewESL(conn net.Conn) *ESL { return &ESL{conn: conn, r: bufio.NewReader(conn)} }

// Close closes the connection.
func (c *ESL) Close() error { return c.conn.Close() }

// API runs `api <cmd>` and returns its output. An output starting with -ERR or -USAGE
// is an error wrapping ErrESL.
func (c *ESL) API(ctx context.Context, cmd string) (string, error) {
	msg, err := c.Command(ctx, "api "+cmd)
	if err != nil {
		return "", err
	}
	if strings.HasPrefix(msg.Body, "-ERR") || strings.HasPrefix(msg.Body, "-USAGE") {
		return msg.Body, fmt.Errorf("api %s: %w: %s", cmd, ErrESL, strings.TrimSpace(msg.Body))
	}
	return msg.Body, nil
}

// SendMsg sends `sendmsg <uuid>` with the given headers (in order, "Name: value"),
// e.g. call-command: execute, execute-app-name, execute-app-arg.
func (c *ESL) SendMsg(ctx context.Context, uuid string, headers ...string) error {
	_, err := c.Command(ctx, "sendmsg "+uuid+"\n"+strings.Join(headers, "\n"))
	return err
}

// Command sends one command (its lines, without the final blank line) and returns its
// reply (command/reply or api/response). A "-ERR" Reply-Text is an error wrapping
// ErrESL. The context's deadline (DefaultTimeout when it has none) bounds the exchange;
// a timed-out connection must be closed, since its late reply would answer the next
// command.
func (c *ESL) Command(ctx context.Context, cmd string) (ESLMessage, error) {
	if strings.Contains(cmd, "\n\n") || strings.ContainsRune(cmd, '\r') {
		return ESLMessage{}, fmt.Errorf("esl command %q: blank line or CR inside", firstLine(cmd))
	}
	ctx, cancel := withDeadline(ctx)
	defer cancel()
	dl, _ := ctx.Deadline()
	if err := c.conn.SetWriteDeadline(dl); err != nil {
		return ESLMessage{}, fmt.Errorf("esl %s: %w", firstLine(cmd), err)
	}
	if _, err := io.WriteString(c.conn, cmd+"\n\n"); err != nil {
		return ESLMessage{}, fmt.Errorf("esl %s: write: %w", firstLine(cmd), err)
	}
	for {
		msg, err := c.read(ctx)
		if err != nil {
			return ESLMessage{}, fmt.Errorf("esl %s: %w", firstLine(cmd), err)
		}
		switch msg.Headers["Content-Type"] {
		case "command/reply":
			if reply := msg.Header("Reply-Text"); strings.HasPrefix(reply, "-ERR") {
				return msg, fmt.Errorf("esl %s: %w: %s", firstLine(cmd), ErrESL, strings.TrimSpace(reply))
			}
			return msg, nil
		case "api/response":
			return msg, nil
		case "text/disconnect-notice", "text/rude-rejection":
			return msg, fmt.Errorf("esl %s: %w: %s: %s", firstLine(cmd), ErrDisconnected, msg.Headers["Content-Type"], strings.TrimSpace(msg.Body))
		default:
			c.mu.Lock()
			c.events = append(c.events, msg)
			c.mu.Unlock()
		}
	}
}

// NextEvent returns the next frame that is not a reply (an event, or a disconnect
// notice), waiting until ctx's deadline.
func (c *ESL) NextEvent(ctx context.Context) (ESLMessage, error) {
	c.mu.Lock()
	if len(c.events) > 0 {
		msg := c.events[0]
		c.events = c.events[1:]
		c.mu.Unlock()
		return msg, nil
	}
	c.mu.Unlock()
	ctx, cancel := withDeadline(ctx)
	defer cancel()
	return c.read(ctx)
}

// read reads one frame within ctx's deadline.
func (c *ESL) read(ctx context.Context) (ESLMessage, error) {
	dl, _ := ctx.Deadline()
	if err := c.conn.SetReadDeadline(dl); err != nil {
		return ESLMessage{}, err
	}
	msg, err := ReadESLMessage(c.r)
	if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
		return msg, fmt.Errorf("read: %w (%w)", context.DeadlineExceeded, err)
	}
	return msg, err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// maxESLBody bounds a frame body the lab accepts (a full channel dump is a few KB).
const maxESLBody = 4 << 20

// ReadESLMessage reads one ESL frame: "Name: value" lines up to a blank line, then
// Content-Length bytes of body.
func ReadESLMessage(r *bufio.Reader) (ESLMessage, error) {
	msg := ESLMessage{Headers: map[string]string{}}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return msg, fmt.Errorf("read header: %w", err)
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			if len(msg.Headers) == 0 {
				continue // stray blank lines between frames
			}
			break
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			return msg, fmt.Errorf("malformed header line %q", line)
		}
		msg.Headers[k] = strings.TrimSpace(v)
	}
	if cl, ok := msg.Headers["Content-Length"]; ok {
		n, err := strconv.Atoi(cl)
		if err != nil || n < 0 || n > maxESLBody {
			return msg, fmt.Errorf("bad Content-Length %q", cl)
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(r, b); err != nil {
			return msg, fmt.Errorf("read body: %w", err)
		}
		msg.Body = string(b)
	}
	return msg, nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// OutboundListener is a test's stand-in for callwarden's outbound socket server: a TCP
// listener FreeSWITCH's `socket` application connects to. Its address is on the host
// address FreeSWITCH reaches (FreeSWITCH.HostIP), on a port of its own.
type OutboundListener struct {
	ln net.Listener
}

// ListenOutbound listens on ip:0 (ip as seen from the FreeSWITCH container).
func ListenOutbound(ip string) (*OutboundListener, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return nil, fmt.Errorf("outbound socket listener on %s: %w", ip, err)
	}
	return &OutboundListener{ln: ln}, nil
}

// Addr is the listener's ip:port, what the dialplan's ${callwarden_socket} should be.
func (l *OutboundListener) Addr() string { return l.ln.Addr().String() }

// Close stops listening.
func (l *OutboundListener) Close() error { return l.ln.Close() }

// OutboundCall is one connection of FreeSWITCH's `socket` application: after
// `connect`, Channel holds the whole channel (its variables as variable_<name>).
type OutboundCall struct {
	*ESL
	Channel ESLMessage
}

// Accept waits (until ctx's deadline) for FreeSWITCH to connect, sends `connect` and
// returns the call with its channel data.
func (l *OutboundListener) Accept(ctx context.Context) (*OutboundCall, error) {
	ctx, cancel := withDeadline(ctx)
	defer cancel()
	type result struct {
		conn net.Conn
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		conn, err := l.ln.Accept()
		ch <- result{conn, err}
	}()
	var res result
	select {
	case res = <-ch:
	case <-ctx.Done():
		// Unblock Accept; the listener cannot be used afterwards.
		_ = l.ln.(*net.TCPListener).SetDeadline(time.Now())
		res = <-ch
		if res.err == nil {
			res.conn.Close()
		}
		return nil, fmt.Errorf("no connection from FreeSWITCH on %s: %w", l.Addr(), ctx.Err())
	}
	if res.err != nil {
		return nil, fmt.Errorf("accept on %s: %w", l.Addr(), res.err)
	}
	c := NewESL(res.conn)
	msg, err := c.Command(ctx, "connect")
	if err != nil {
		c.Close()
		return nil, err
	}
	return &OutboundCall{ESL: c, Channel: msg}, nil
}

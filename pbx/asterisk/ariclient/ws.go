package ariclient

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // RFC 6455 mandates SHA-1 for Sec-WebSocket-Accept.
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"
)

const (
	OpContinuation = 0x0
	OpText         = 0x1
	OpBinary       = 0x2
	OpClose        = 0x8
	OpPing         = 0x9
	OpPong         = 0xA

	// MaxMessageSize bounds one reassembled message; ARI events are a few KiB.
	MaxMessageSize = 4 << 20
	wsWriteTimeout = 5 * time.Second
	websocketGUID  = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
)

// ErrClosed is returned by ReadMessage once the server closed the connection.
var ErrClosed = errors.New("websocket closed by the server")

// Conn is a client websocket connection. ReadMessage must be called from
// one goroutine; writes are serialised.
type Conn struct {
	conn      net.Conn
	br        *bufio.Reader
	wmu       sync.Mutex
	closeOnce sync.Once // one close frame per connection
}

// Dial opens a ws:// or wss:// connection; ctx bounds the connect and the
// handshake.
func Dial(ctx context.Context, rawURL string, header http.Header) (*Conn, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parse websocket url: %w", err)
	}
	port := u.Port()
	switch u.Scheme {
	case "ws":
		if port == "" {
			port = "80"
		}
	case "wss":
		if port == "" {
			port = "443"
		}
	default:
		return nil, fmt.Errorf("websocket url scheme %q: want ws or wss", u.Scheme)
	}
	addr := net.JoinHostPort(u.Hostname(), port)
	var conn net.Conn
	if u.Scheme == "wss" {
		d := tls.Dialer{Config: &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12}}
		conn, err = d.DialContext(ctx, "tcp", addr)
	} else {
		var d net.Dialer
		conn, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	ws, err := handshake(ctx, conn, u, header)
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	return ws, nil
}

func handshake(ctx context.Context, conn net.Conn, u *url.URL, header http.Header) (*Conn, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(10 * time.Second)
	}
	if err := conn.SetDeadline(deadline); err != nil {
		return nil, fmt.Errorf("set handshake deadline: %w", err)
	}
	nonce := make([]byte, 16)
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("websocket key: %w", err)
	}
	key := base64.StdEncoding.EncodeToString(nonce)
	req := &http.Request{
		Method: http.MethodGet, URL: u, Host: u.Host,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: header.Clone(),
	}
	if req.Header == nil {
		req.Header = http.Header{}
	}
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Sec-WebSocket-Key", key)
	req.Header.Set("Sec-WebSocket-Version", "13")
	if err := req.Write(conn); err != nil {
		return nil, fmt.Errorf("send websocket handshake: %w", err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return nil, fmt.Errorf("read websocket handshake: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		_ = resp.Body.Close()
		return nil, &HandshakeError{Status: resp.StatusCode, Body: string(body)}
	}
	if got, want := resp.Header.Get("Sec-WebSocket-Accept"), AcceptKey(key); got != want {
		return nil, fmt.Errorf("websocket handshake: Sec-WebSocket-Accept %q, want %q", got, want)
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		return nil, fmt.Errorf("clear handshake deadline: %w", err)
	}
	return &Conn{conn: conn, br: br}, nil
}

// AcceptKey is the Sec-WebSocket-Accept a server answers to the client's
// Sec-WebSocket-Key (RFC 6455 4.2.2).
func AcceptKey(key string) string {
	sum := sha1.Sum([]byte(key + websocketGUID)) //nolint:gosec // protocol requirement.
	return base64.StdEncoding.EncodeToString(sum[:])
}

// HandshakeError is a refused upgrade, e.g. 401 for bad ARI credentials.
type HandshakeError struct {
	Status int
	Body   string
}

func (e *HandshakeError) Error() string {
	return fmt.Sprintf("websocket handshake refused: %d %s", e.Status, e.Body)
}

// ReadMessage returns the next complete message, answering pings on the way.
func (c *Conn) ReadMessage() (byte, []byte, error) {
	var (
		msgOp byte
		msg   []byte
	)
	for {
		fin, op, data, err := ReadFrame(c.br)
		if err != nil {
			return 0, nil, err
		}
		switch op {
		case OpPing:
			if err := c.writeFrame(OpPong, data); err != nil {
				return 0, nil, fmt.Errorf("answer ping: %w", err)
			}
			continue
		case OpPong:
			continue
		case OpClose:
			c.closeOnce.Do(func() { _ = c.writeFrame(OpClose, data) })
			return 0, nil, ErrClosed
		case OpText, OpBinary:
			if msgOp != 0 {
				return 0, nil, errors.New("websocket: new message inside a fragmented one")
			}
			msgOp, msg = op, data
		case OpContinuation:
			if msgOp == 0 {
				return 0, nil, errors.New("websocket: continuation frame without a message")
			}
			msg = append(msg, data...)
		default:
			return 0, nil, fmt.Errorf("websocket: unknown opcode %#x", op)
		}
		if len(msg) > MaxMessageSize {
			return 0, nil, fmt.Errorf("websocket: message larger than %d bytes", MaxMessageSize)
		}
		if fin {
			return msgOp, msg, nil
		}
	}
}

// ReadFrame reads one frame and returns its payload, unmasked.
func ReadFrame(r io.Reader) (fin bool, op byte, payload []byte, err error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return false, 0, nil, fmt.Errorf("read frame header: %w", err)
	}
	fin = h[0]&0x80 != 0
	if h[0]&0x70 != 0 {
		return false, 0, nil, errors.New("websocket: reserved bits set (no extension was negotiated)")
	}
	op = h[0] & 0x0f
	masked := h[1]&0x80 != 0
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var ext [2]byte
		if _, err := io.ReadFull(r, ext[:]); err != nil {
			return false, 0, nil, fmt.Errorf("read frame length: %w", err)
		}
		n = uint64(binary.BigEndian.Uint16(ext[:]))
	case 127:
		var ext [8]byte
		if _, err := io.ReadFull(r, ext[:]); err != nil {
			return false, 0, nil, fmt.Errorf("read frame length: %w", err)
		}
		n = binary.BigEndian.Uint64(ext[:])
	}
	if op >= OpClose && (n > 125 || !fin) {
		return false, 0, nil, errors.New("websocket: invalid control frame")
	}
	if n > MaxMessageSize {
		return false, 0, nil, fmt.Errorf("websocket: frame of %d bytes is larger than %d", n, MaxMessageSize)
	}
	var mask [4]byte
	if masked {
		if _, err := io.ReadFull(r, mask[:]); err != nil {
			return false, 0, nil, fmt.Errorf("read frame mask: %w", err)
		}
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return false, 0, nil, fmt.Errorf("read frame payload: %w", err)
	}
	if masked {
		for i := range payload {
			payload[i] ^= mask[i%4]
		}
	}
	return fin, op, payload, nil
}

// appendFrame appends a frame; clients mask (RFC 6455 5.3), servers (the
// tests' fake Asterisk) do not.
func AppendFrame(dst []byte, op byte, payload []byte, mask *[4]byte) []byte {
	dst = append(dst, 0x80|op)
	var m byte
	if mask != nil {
		m = 0x80
	}
	switch n := len(payload); {
	case n < 126:
		dst = append(dst, m|byte(n))
	case n <= 0xffff:
		dst = append(dst, m|126)
		dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	default:
		dst = append(dst, m|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	if mask == nil {
		return append(dst, payload...)
	}
	dst = append(dst, mask[:]...)
	for i, b := range payload {
		dst = append(dst, b^mask[i%4])
	}
	return dst
}

func (c *Conn) writeFrame(op byte, payload []byte) error {
	var mask [4]byte
	if _, err := rand.Read(mask[:]); err != nil {
		return fmt.Errorf("frame mask: %w", err)
	}
	frame := AppendFrame(nil, op, payload, &mask)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.conn.SetWriteDeadline(time.Now().Add(wsWriteTimeout)); err != nil {
		return fmt.Errorf("set write deadline: %w", err)
	}
	if _, err := c.conn.Write(frame); err != nil {
		return fmt.Errorf("write frame: %w", err)
	}
	return nil
}

// SendClose starts the close handshake: it sends a normal-closure frame
// (once per connection; a close frame already sent in answer to the
// server's counts) and leaves the connection open so ReadMessage sees the
// server's answer as ErrClosed.
func (c *Conn) SendClose() {
	c.closeOnce.Do(func() { _ = c.writeFrame(OpClose, []byte{0x03, 0xe8}) }) // 1000: normal closure.
}

// SetReadDeadline bounds a blocked ReadMessage (net.Conn.SetReadDeadline).
func (c *Conn) SetReadDeadline(t time.Time) error { return c.conn.SetReadDeadline(t) }

// Drain discards what the server still sends until it closes the TCP
// connection or the read deadline passes: after ErrClosed, it lets the
// server close first, as RFC 6455 7.1.1 wants.
func (c *Conn) Drain() { _, _ = io.Copy(io.Discard, c.br) }

// Close sends a normal-closure frame (unless one was sent) and closes the
// connection; a blocked ReadMessage then fails.
func (c *Conn) Close() error {
	c.SendClose()
	if err := c.conn.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("close websocket: %w", err)
	}
	return nil
}

package asterisk

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

// The event stream speaks just enough RFC 6455 to read ARI events: a client
// handshake, text messages (possibly fragmented), ping/pong and close. Owning
// the reader is what lets callwarden look at an event's type before
// ari.DecodeEvent does, and so survive the event types Asterisk 22 added.

const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA

	// maxMessageSize bounds one reassembled message; ARI events are a few KiB.
	maxMessageSize = 4 << 20
	wsWriteTimeout = 5 * time.Second
	websocketGUID  = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
)

// errWSClosed is returned by readMessage once the server closed the connection.
var errWSClosed = errors.New("websocket closed by the server")

// wsConn is a client websocket connection. readMessage must be called from
// one goroutine; writes are serialised.
type wsConn struct {
	conn      net.Conn
	br        *bufio.Reader
	wmu       sync.Mutex
	closeOnce sync.Once // one close frame per connection
}

// dialWS opens a ws:// or wss:// connection; ctx bounds the connect and the
// handshake.
func dialWS(ctx context.Context, rawURL string, header http.Header) (*wsConn, error) {
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
	ws, err := wsHandshake(ctx, conn, u, header)
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	return ws, nil
}

func wsHandshake(ctx context.Context, conn net.Conn, u *url.URL, header http.Header) (*wsConn, error) {
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
		return nil, &handshakeError{Status: resp.StatusCode, Body: string(body)}
	}
	sum := sha1.Sum([]byte(key + websocketGUID)) //nolint:gosec // protocol requirement.
	if got, want := resp.Header.Get("Sec-WebSocket-Accept"), base64.StdEncoding.EncodeToString(sum[:]); got != want {
		return nil, fmt.Errorf("websocket handshake: Sec-WebSocket-Accept %q, want %q", got, want)
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		return nil, fmt.Errorf("clear handshake deadline: %w", err)
	}
	return &wsConn{conn: conn, br: br}, nil
}

// handshakeError is a refused upgrade, e.g. 401 for bad ARI credentials.
type handshakeError struct {
	Status int
	Body   string
}

func (e *handshakeError) Error() string {
	return fmt.Sprintf("websocket handshake refused: %d %s", e.Status, e.Body)
}

// readMessage returns the next complete message, answering pings on the way.
func (c *wsConn) readMessage() (byte, []byte, error) {
	var (
		msgOp byte
		msg   []byte
	)
	for {
		fin, op, data, err := readFrame(c.br)
		if err != nil {
			return 0, nil, err
		}
		switch op {
		case opPing:
			if err := c.writeFrame(opPong, data); err != nil {
				return 0, nil, fmt.Errorf("answer ping: %w", err)
			}
			continue
		case opPong:
			continue
		case opClose:
			c.closeOnce.Do(func() { _ = c.writeFrame(opClose, data) })
			return 0, nil, errWSClosed
		case opText, opBinary:
			if msgOp != 0 {
				return 0, nil, errors.New("websocket: new message inside a fragmented one")
			}
			msgOp, msg = op, data
		case opContinuation:
			if msgOp == 0 {
				return 0, nil, errors.New("websocket: continuation frame without a message")
			}
			msg = append(msg, data...)
		default:
			return 0, nil, fmt.Errorf("websocket: unknown opcode %#x", op)
		}
		if len(msg) > maxMessageSize {
			return 0, nil, fmt.Errorf("websocket: message larger than %d bytes", maxMessageSize)
		}
		if fin {
			return msgOp, msg, nil
		}
	}
}

func readFrame(r io.Reader) (fin bool, op byte, payload []byte, err error) {
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
	if op >= opClose && (n > 125 || !fin) {
		return false, 0, nil, errors.New("websocket: invalid control frame")
	}
	if n > maxMessageSize {
		return false, 0, nil, fmt.Errorf("websocket: frame of %d bytes is larger than %d", n, maxMessageSize)
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
func appendFrame(dst []byte, op byte, payload []byte, mask *[4]byte) []byte {
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

func (c *wsConn) writeFrame(op byte, payload []byte) error {
	var mask [4]byte
	if _, err := rand.Read(mask[:]); err != nil {
		return fmt.Errorf("frame mask: %w", err)
	}
	frame := appendFrame(nil, op, payload, &mask)
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

// close sends a normal-closure frame and closes the connection; a blocked
// readMessage then fails.
func (c *wsConn) close() error {
	c.closeOnce.Do(func() { _ = c.writeFrame(opClose, []byte{0x03, 0xe8}) }) // 1000: normal closure.
	if err := c.conn.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("close websocket: %w", err)
	}
	return nil
}

package lab

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // RFC 6455 mandates SHA-1 for Sec-WebSocket-Accept.
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

// The harness speaks just enough RFC 6455 to read ARI events: a client handshake, text
// messages (possibly fragmented), ping/pong and close. It exists so the tests do not
// depend on the ari library's event decoder (which panics on event types Asterisk 22
// added) nor pull a websocket module into go.mod.

const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA

	// maxMessageSize bounds one reassembled message; ARI events are a few KiB.
	maxMessageSize = 8 << 20
	// writeTimeout bounds every frame the client writes (pong, close).
	writeTimeout  = 5 * time.Second
	websocketGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
)

// ErrWebSocketClosed is returned by readMessage once the server closed the connection.
var ErrWebSocketClosed = errors.New("websocket closed")

// wsConn is a client websocket connection. readMessage must be called from one
// goroutine; writes are serialised.
type wsConn struct {
	conn net.Conn
	br   *bufio.Reader
	wmu  sync.Mutex
}

// dialWebSocket opens a ws:// connection; ctx bounds the TCP connect and the handshake.
func dialWebSocket(ctx context.Context, rawURL string, header http.Header) (*wsConn, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parse websocket url: %w", err)
	}
	if u.Scheme != "ws" {
		return nil, fmt.Errorf("websocket url %q: only ws:// is supported", rawURL)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "80")
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", host, err)
	}
	ws, err := handshake(ctx, conn, u, header)
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	return ws, nil
}

func handshake(ctx context.Context, conn net.Conn, u *url.URL, header http.Header) (*wsConn, error) {
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
		Method:     http.MethodGet,
		URL:        u,
		Host:       u.Host,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     header.Clone(),
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
		return nil, fmt.Errorf("websocket handshake: %s: %s", resp.Status, body)
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

// readMessage returns the next complete text or binary message, answering pings on
// the way. It returns ErrWebSocketClosed after a close frame.
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
			_ = c.writeFrame(opClose, data)
			return 0, nil, ErrWebSocketClosed
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

// readFrame reads one frame and returns its payload, unmasked.
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

// appendFrame appends a masked client frame (RFC 6455 5.3: clients always mask).
func appendFrame(dst []byte, op byte, payload []byte, mask [4]byte) []byte {
	dst = append(dst, 0x80|op)
	switch n := len(payload); {
	case n < 126:
		dst = append(dst, 0x80|byte(n))
	case n <= 0xffff:
		dst = append(dst, 0x80|126)
		dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	default:
		dst = append(dst, 0x80|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
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
	frame := appendFrame(nil, op, payload, mask)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.conn.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
		return fmt.Errorf("set write deadline: %w", err)
	}
	if _, err := c.conn.Write(frame); err != nil {
		return fmt.Errorf("write frame: %w", err)
	}
	return nil
}

// close sends a normal-closure frame and closes the connection; the reader then fails.
func (c *wsConn) close() error {
	_ = c.writeFrame(opClose, []byte{0x03, 0xe8}) // 1000: normal closure.
	if err := c.conn.Close(); err != nil {
		return fmt.Errorf("close websocket: %w", err)
	}
	return nil
}

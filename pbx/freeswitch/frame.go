package freeswitch

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Content types of ESL frames.
const (
	typeAuthRequest = "auth/request"
	typeReply       = "command/reply"
	typeAPIResponse = "api/response"
	typeEventPlain  = "text/event-plain"
	typeEventJSON   = "text/event-json"
	typeDisconnect  = "text/disconnect-notice"
)

// Limits of one frame: FreeSWITCH's largest real frames (CHANNEL_HANGUP
// events, uuid_dump) are a few KiB; anything near these is not ESL. The
// exception is an api/response: `show channels as json` writes about a
// KiB a channel, so a PBX with a thousand calls answers with megabytes.
const (
	maxBody        = 1 << 20
	maxAPIBody     = 64 << 20
	maxHeaderLine  = 16 << 10
	maxHeaderCount = 1024
)

// ErrFrame wraps every malformed-frame error: the stream is then out of
// step and the connection must be dropped.
var ErrFrame = errors.New("malformed ESL frame")

// frame is one ESL message: its headers (values percent-decoded, the first
// of a repeated name kept) and its body.
type frame struct {
	header map[string]string
	body   []byte
	// skipped counts header lines that were not "Name: value" and were
	// ignored.
	skipped int
}

// get is the decoded value of header name ("" when absent).
func (f frame) get(name string) string { return f.header[name] }

func (f frame) contentType() string { return f.get("Content-Type") }

// readFrame reads one frame: header lines up to an empty line, then
// Content-Length bytes of body. Several frames may sit in one read; the
// bufio.Reader keeps the rest for the next call.
func readFrame(r *bufio.Reader) (frame, error) {
	f := frame{header: make(map[string]string)}
	lines := 0
	for {
		line, err := readLine(r)
		if err != nil {
			if errors.Is(err, io.EOF) && lines > 0 {
				return f, fmt.Errorf("%w: truncated headers", ErrFrame)
			}
			return f, err
		}
		if line == "" {
			if lines == 0 {
				continue // stray blank lines between frames
			}
			break
		}
		lines++
		if lines > maxHeaderCount {
			return f, fmt.Errorf("%w: more than %d header lines", ErrFrame, maxHeaderCount)
		}
		if !parseHeaderLine(f.header, line) {
			f.skipped++
		}
	}
	cl, ok := f.header["Content-Length"]
	if !ok {
		return f, nil
	}
	n, err := strconv.Atoi(cl)
	limit := maxBody
	if f.contentType() == typeAPIResponse {
		limit = maxAPIBody
	}
	if err != nil || n < 0 || n > limit {
		return f, fmt.Errorf("%w: Content-Length %q", ErrFrame, cl)
	}
	f.body = make([]byte, n)
	if _, err := io.ReadFull(r, f.body); err != nil {
		return f, fmt.Errorf("%w: body shorter than Content-Length %d: %w", ErrFrame, n, err)
	}
	return f, nil
}

// readLine reads one line without its LF (and a CR before it).
func readLine(r *bufio.Reader) (string, error) {
	var b []byte
	for {
		chunk, isPrefix, err := r.ReadLine()
		if err != nil {
			return "", err
		}
		b = append(b, chunk...)
		if len(b) > maxHeaderLine {
			return "", fmt.Errorf("%w: header line longer than %d bytes", ErrFrame, maxHeaderLine)
		}
		if !isPrefix {
			return string(b), nil
		}
	}
}

// parseHeaderLine adds "Name: value" to h (the first of a repeated name
// wins) and reports whether the line was a header.
func parseHeaderLine(h map[string]string, line string) bool {
	name, value, ok := strings.Cut(line, ":")
	name = strings.TrimSpace(name)
	if !ok || name == "" || strings.ContainsAny(name, " \t") {
		return false
	}
	if _, dup := h[name]; !dup {
		h[name] = decodeValue(strings.TrimLeft(value, " \t"))
	}
	return true
}

// parsePlainEvent parses the body of a text/event-plain frame: the event's
// headers, then its own body (Content-Length) if any.
func parsePlainEvent(body []byte) (frame, error) {
	return readFrame(bufio.NewReader(bytes.NewReader(body)))
}

// decodeValue undoes FreeSWITCH's percent-encoding of header values
// (switch_url_encode). It is lenient: a '%' not followed by two hex digits
// is kept as is, and '+' stays '+' (FreeSWITCH sends "+OK" unencoded).
func decodeValue(s string) string {
	if strings.IndexByte(s, '%') < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

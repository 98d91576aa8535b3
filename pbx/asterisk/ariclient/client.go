// Package ariclient is callwarden's one client of Asterisk's REST Interface:
// REST calls that each take a context and have a deadline and whose errors
// keep ARI's status (ErrNotFound for a 404, ErrConflict for a 409, *Error
// for any other non-2xx answer), and the websocket reader of ARI events
// (Dial, Conn), a minimal RFC 6455 client. Owning the reader is what lets
// the Asterisk adapter look at an event's type before ari.DecodeEvent does,
// and so survive the event types Asterisk 22 added.
//
// The Asterisk adapter, the integration harness and the demo all use it;
// tests that observe Asterisk do so as a second ARI user of this client,
// never through a second implementation. ReadFrame and AppendFrame also
// serve fake ARI servers in tests. It knows nothing of callwarden's
// decisions and imports no other package of the module.
package ariclient

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// ErrNotFound is matched (errors.Is) by an ARI 404: no such channel, bridge,
// application, recording or variable.
var ErrNotFound = errors.New("not found")

// ErrConflict is matched by an ARI 409: the resource is in the wrong state
// (a channel not in Stasis, a recording already paused).
var ErrConflict = errors.New("conflict")

// Error is a non-2xx answer of the ARI REST API.
type Error struct {
	Method, Path string
	Status       int
	Message      string
}

func (e *Error) Error() string {
	return fmt.Sprintf("ari %s %s: %d %s", e.Method, e.Path, e.Status, e.Message)
}

// Is maps 404 to ErrNotFound and 409 to ErrConflict.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrConflict:
		return e.Status == http.StatusConflict
	}
	return false
}

// maxBody bounds an answer's body; ARI's largest (GET /channels on a busy
// PBX) stay far below.
const maxBody = 16 << 20

// maxIdleConns is the idle connections kept to ARI. A monitor request
// makes up to three calls at once (answer, bridge, snoop) and requests run
// side by side: a connection beyond the idle pool is closed after its call
// and dialled again for the next (a new Asterisk HTTP thread each time).
const maxIdleConns = 64

// Client calls one ARI as one user. ari/v5's native client takes no
// context, ignores its own timeout and loses a 404's status code, so
// callwarden uses this one: every call is bounded by the context's
// deadline and by Timeout, whichever comes first, and by the http.Client's
// Timeout (twice Timeout) whatever the context says.
type Client struct {
	base     string // http://host:port/ari
	user     string
	password string
	timeout  time.Duration
	http     *http.Client
}

// New returns a client of the ARI at base (e.g. http://127.0.0.1:8088/ari);
// timeout bounds every call (default 2s when not positive).
func New(base, user, password string, timeout time.Duration) *Client {
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	return &Client{
		base:     strings.TrimSuffix(base, "/"),
		user:     user,
		password: password,
		timeout:  timeout,
		http: &http.Client{
			// A hard bound beside the per-call context: nothing can wait
			// longer than twice the configured timeout.
			Timeout: 2 * timeout,
			Transport: &http.Transport{
				Proxy:               nil, // ARI is next to us; never through an HTTP proxy.
				DialContext:         (&net.Dialer{Timeout: timeout}).DialContext,
				MaxIdleConnsPerHost: maxIdleConns,
				IdleConnTimeout:     90 * time.Second,
			},
		},
	}
}

// URL is the REST base the client calls.
func (c *Client) URL() string { return c.base }

// Close drops the client's idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// Do calls ARI: method on path (below the base, e.g. "/channels/x"), with
// query and, when body is not nil, a JSON body; a 2xx answer is decoded
// into out when out is not nil. A non-2xx answer is an *Error.
func (c *Client) Do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("ari %s %s: encode body: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return fmt.Errorf("ari %s %s: %w", method, path, err)
	}
	req.SetBasicAuth(c.user, c.password)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("ari %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return fmt.Errorf("ari %s %s: read body: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var msg struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(data, &msg) != nil || msg.Message == "" {
			msg.Message = strings.TrimSpace(string(data))
		}
		return &Error{Method: method, Path: path, Status: resp.StatusCode, Message: msg.Message}
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("ari %s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}

// Download copies the body of GET path (a file, such as a stored
// recording's /file) to w and returns its Content-Type. Unlike Do, it is
// bounded by limit (the whole transfer, however large) rather than by the
// client's call timeout; a non-2xx answer is an *Error.
func (c *Client) Download(ctx context.Context, path string, w io.Writer, limit time.Duration) (contentType string, err error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return "", fmt.Errorf("ari GET %s: %w", path, err)
	}
	req.SetBasicAuth(c.user, c.password)
	// The client's own Timeout would cut a large file short: the transport
	// alone, bounded by ctx.
	resp, err := (&http.Client{Transport: c.http.Transport}).Do(req)
	if err != nil {
		return "", fmt.Errorf("ari GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return "", &Error{Method: http.MethodGet, Path: path, Status: resp.StatusCode, Message: strings.TrimSpace(string(data))}
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return "", fmt.Errorf("ari GET %s: read body: %w", path, err)
	}
	return resp.Header.Get("Content-Type"), nil
}

// Esc escapes one path segment (an id or a name).
func Esc(s string) string { return url.PathEscape(s) }

// AuthHeader is the header that authenticates the websocket upgrade.
func (c *Client) AuthHeader() http.Header {
	h := http.Header{}
	h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(c.user+":"+c.password)))
	return h
}

// DialEvents opens the events websocket at wsURL (GET /events?app=...) as
// this client's user; ctx bounds the connect and the handshake.
func (c *Client) DialEvents(ctx context.Context, wsURL string) (*Conn, error) {
	return Dial(ctx, wsURL, c.AuthHeader())
}

// EventsURL builds the websocket URL of GET /events for app: ws, when not
// empty, else the REST base with ws(s):// and /events.
//
// It never asks for subscribeAll: that also subscribes the application to
// every device state, and Asterisk can deadlock ARI when a websocket with
// such a subscription closes while a device state message is in flight
// (asterisk/asterisk#2170). Subscribe with WatchAll instead, once the
// application is registered.
func (c *Client) EventsURL(ws, app string) (string, error) {
	if ws == "" {
		u, err := url.Parse(c.base)
		if err != nil {
			return "", fmt.Errorf("URL: %w", err)
		}
		switch u.Scheme {
		case "http":
			u.Scheme = "ws"
		case "https":
			u.Scheme = "wss"
		default:
			return "", fmt.Errorf("URL scheme %q (want http or https)", u.Scheme)
		}
		u.Path = strings.TrimSuffix(u.Path, "/") + "/events"
		ws = u.String()
	}
	u, err := url.Parse(ws)
	if err != nil {
		return "", fmt.Errorf("WebsocketURL: %w", err)
	}
	q := u.Query()
	q.Set("app", app)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// Application reports whether Asterisk knows the Stasis application app
// (a websocket registered it): false with a nil error on a 404.
func (c *Client) Application(ctx context.Context, app string) (bool, error) {
	err := c.Do(ctx, http.MethodGet, "/applications/"+Esc(app), nil, nil, nil)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, ErrNotFound):
		return false, nil
	}
	return false, err
}

// WaitApplication polls, every 20ms, until Asterisk knows app or ctx ends:
// Asterisk answers the websocket upgrade before it registers the
// application.
func (c *Client) WaitApplication(ctx context.Context, app string) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, err := c.Application(ctx, app)
		if err != nil {
			return fmt.Errorf("application %s: %w", app, err)
		}
		if ok {
			return nil
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("application %s never registered: %w", app, ctx.Err())
		}
	}
}

// WatchAll subscribes app to the events of every channel and bridge of the
// PBX, but not to endpoints or device states (see EventsURL).
func (c *Client) WatchAll(ctx context.Context, app string) error {
	q := url.Values{"eventSource": {"channel:,bridge:"}}
	return c.Do(ctx, http.MethodPost, "/applications/"+Esc(app)+"/subscription", q, nil, nil)
}

// SetEventFilter makes Asterisk send app only the given event types
// (PUT /applications/{app}/eventFilter).
func (c *Client) SetEventFilter(ctx context.Context, app string, types []string) error {
	type eventType struct {
		Type string `json:"type"`
	}
	f := struct {
		Allowed []eventType `json:"allowed"`
	}{Allowed: make([]eventType, len(types))}
	for i, t := range types {
		f.Allowed[i] = eventType{Type: t}
	}
	return c.Do(ctx, http.MethodPut, "/applications/"+Esc(app)+"/eventFilter", nil, f, nil)
}

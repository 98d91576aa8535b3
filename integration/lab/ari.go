package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/callwarden/callwarden/pbx/asterisk/ariws"
)

// DefaultTimeout bounds every ARI or Redis call whose context carries no deadline.
const DefaultTimeout = 10 * time.Second

// ErrNotFound is matched (errors.Is) by an ARI 404: no such channel, bridge or variable.
var ErrNotFound = errors.New("not found")

// ARIError is a non-2xx answer of the ARI REST API.
type ARIError struct {
	Method, Path string
	Status       int
	Message      string
}

func (e *ARIError) Error() string {
	return fmt.Sprintf("ari %s %s: %d %s", e.Method, e.Path, e.Status, e.Message)
}

// Is makes errors.Is(err, ErrNotFound) true for a 404.
func (e *ARIError) Is(target error) bool {
	return target == ErrNotFound && e.Status == http.StatusNotFound
}

// ARI is a small client of Asterisk's REST interface, enough for the tests: plain
// net/http and encoding/json, every call bounded by a deadline.
type ARI struct {
	base     string // http://host:port/ari
	user     string
	password string
	http     *http.Client
}

// NewARI returns a client of the ARI at base (e.g. http://127.0.0.1:8088/ari).
func NewARI(base, user, password string) *ARI {
	return &ARI{
		base:     strings.TrimSuffix(base, "/"),
		user:     user,
		password: password,
		http: &http.Client{
			Timeout: 2 * DefaultTimeout,
			Transport: &http.Transport{
				Proxy:               nil, // the lab is local; never go through an HTTP proxy.
				DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
				MaxIdleConnsPerHost: 4,
				IdleConnTimeout:     30 * time.Second,
			},
		},
	}
}

// AsteriskInfo is the part of GET /asterisk/info the tests read.
type AsteriskInfo struct {
	System struct {
		Version  string `json:"version"`
		EntityID string `json:"entity_id"`
	} `json:"system"`
	Config struct {
		Name string `json:"name"`
	} `json:"config"`
}

// CallerID is an ARI CallerID.
type CallerID struct {
	Name   string `json:"name"`
	Number string `json:"number"`
}

// Channel is an ARI Channel.
type Channel struct {
	ID        string   `json:"id"`
	Name      string   `json:"name"`
	State     string   `json:"state"`
	Caller    CallerID `json:"caller"`
	Connected CallerID `json:"connected"`
	Dialplan  struct {
		Context  string `json:"context"`
		Exten    string `json:"exten"`
		Priority int    `json:"priority"`
		AppName  string `json:"app_name"`
		AppData  string `json:"app_data"`
	} `json:"dialplan"`
}

// Bridge is an ARI Bridge.
type Bridge struct {
	ID          string   `json:"id"`
	Technology  string   `json:"technology"`
	BridgeType  string   `json:"bridge_type"`
	BridgeClass string   `json:"bridge_class"`
	Channels    []string `json:"channels"`
}

// Has reports whether the bridge holds the channel id.
func (b Bridge) Has(channelID string) bool {
	for _, id := range b.Channels {
		if id == channelID {
			return true
		}
	}
	return false
}

// OriginateParams are the POST /channels parameters. Set either Context/Extension or
// App; ChannelID and OtherChannelID name the two halves of a Local channel.
type OriginateParams struct {
	Endpoint       string            `json:"endpoint"`
	Context        string            `json:"context,omitempty"`
	Extension      string            `json:"extension,omitempty"`
	Priority       int               `json:"priority,omitempty"`
	App            string            `json:"app,omitempty"`
	AppArgs        string            `json:"appArgs,omitempty"`
	CallerID       string            `json:"callerId,omitempty"`
	Timeout        int               `json:"timeout,omitempty"`
	ChannelID      string            `json:"channelId,omitempty"`
	OtherChannelID string            `json:"otherChannelId,omitempty"`
	Variables      map[string]string `json:"variables,omitempty"`
}

// withDeadline gives ctx the default deadline when it has none.
func withDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, DefaultTimeout)
}

func (a *ARI) do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	ctx, cancel := withDeadline(ctx)
	defer cancel()
	u := a.base + path
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
	req.SetBasicAuth(a.user, a.password)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return fmt.Errorf("ari %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
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
		return &ARIError{Method: method, Path: path, Status: resp.StatusCode, Message: msg.Message}
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("ari %s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}

// Info returns GET /asterisk/info.
func (a *ARI) Info(ctx context.Context) (AsteriskInfo, error) {
	var info AsteriskInfo
	err := a.do(ctx, http.MethodGet, "/asterisk/info", nil, nil, &info)
	return info, err
}

// Originate creates a channel (POST /channels) and returns it as Asterisk first sees it.
func (a *ARI) Originate(ctx context.Context, p OriginateParams) (Channel, error) {
	var ch Channel
	err := a.do(ctx, http.MethodPost, "/channels", nil, p, &ch)
	return ch, err
}

// Channels lists every channel of Asterisk, in Stasis or not.
func (a *ARI) Channels(ctx context.Context) ([]Channel, error) {
	var chans []Channel
	err := a.do(ctx, http.MethodGet, "/channels", nil, nil, &chans)
	return chans, err
}

// Channel returns one channel; errors.Is(err, ErrNotFound) once it is gone.
func (a *ARI) Channel(ctx context.Context, id string) (Channel, error) {
	var ch Channel
	err := a.do(ctx, http.MethodGet, "/channels/"+url.PathEscape(id), nil, nil, &ch)
	return ch, err
}

// Bridges lists every bridge of Asterisk, including the ones app_queue makes.
func (a *ARI) Bridges(ctx context.Context) ([]Bridge, error) {
	var bridges []Bridge
	err := a.do(ctx, http.MethodGet, "/bridges", nil, nil, &bridges)
	return bridges, err
}

// ChannelVar reads a channel variable (or dialplan function); errors.Is(err,
// ErrNotFound) when the variable is not set.
func (a *ARI) ChannelVar(ctx context.Context, channelID, name string) (string, error) {
	var v struct {
		Value string `json:"value"`
	}
	err := a.do(ctx, http.MethodGet, "/channels/"+url.PathEscape(channelID)+"/variable",
		url.Values{"variable": {name}}, nil, &v)
	return v.Value, err
}

// Hangup hangs a channel up; errors.Is(err, ErrNotFound) if it is already gone.
func (a *ARI) Hangup(ctx context.Context, channelID string) error {
	return a.do(ctx, http.MethodDelete, "/channels/"+url.PathEscape(channelID), nil, nil, nil)
}

// eventsURL is the websocket URL of GET /events for app, subscribed to all events.
func (a *ARI) eventsURL(app string) string {
	ws := "ws" + strings.TrimPrefix(a.base, "http")
	return ws + "/events?" + url.Values{"app": {app}}.Encode()
}

// Events registers the Stasis application app, subscribed to every channel and bridge
// event, and starts recording its events. ctx bounds the connection only;
// Close the stream when done.
func (a *ARI) Events(ctx context.Context, app string) (*EventStream, error) {
	ctx, cancel := withDeadline(ctx)
	defer cancel()
	req, err := http.NewRequest(http.MethodGet, a.base, nil)
	if err != nil {
		return nil, fmt.Errorf("ari events: %w", err)
	}
	req.SetBasicAuth(a.user, a.password)
	ws, err := ariws.Dial(ctx, a.eventsURL(app), req.Header)
	if err != nil {
		return nil, fmt.Errorf("ari events for app %s: %w", app, err)
	}
	stream := newEventStream(ws)
	// Asterisk answers the upgrade before it registers the application; wait until the
	// application exists so events of the caller's next action cannot be missed.
	if err := a.waitApplication(ctx, app); err != nil {
		return nil, errors.Join(err, stream.Close())
	}
	// Every channel and bridge, but not subscribeAll: that also subscribes to every
	// device state, and Asterisk 22 can deadlock ARI when such a websocket closes while
	// a device state message is in flight (asterisk/asterisk#2170).
	sub := url.Values{"eventSource": {"channel:,bridge:"}}
	if err := a.do(ctx, http.MethodPost, "/applications/"+url.PathEscape(app)+"/subscription", sub, nil, nil); err != nil {
		return nil, errors.Join(fmt.Errorf("ari events: subscribe %s to every channel and bridge: %w", app, err), stream.Close())
	}
	return stream, nil
}

// waitApplication polls GET /applications/{app} until Asterisk knows the application.
func (a *ARI) waitApplication(ctx context.Context, app string) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := a.do(ctx, http.MethodGet, "/applications/"+url.PathEscape(app), nil, nil, nil)
		if err == nil {
			return nil
		}
		if !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("ari application %s: %w", app, err)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("ari application %s never registered: %w", app, ctx.Err())
		}
	}
}

package asterisk

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

	"github.com/CyCoreSystems/ari/v5"
)

// ErrNotFound is matched (errors.Is) by an ARI 404: no such channel, bridge,
// recording or variable.
var ErrNotFound = errors.New("not found")

// ErrConflict is matched by an ARI 409: the resource is in the wrong state
// (a channel not in Stasis, a recording already paused).
var ErrConflict = errors.New("conflict")

// APIError is a non-2xx answer of the ARI REST API.
type APIError struct {
	Method, Path string
	Status       int
	Message      string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("ari %s %s: %d %s", e.Method, e.Path, e.Status, e.Message)
}

// Is maps 404 to ErrNotFound and 409 to ErrConflict.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrConflict:
		return e.Status == http.StatusConflict
	}
	return false
}

// rest is callwarden's ARI REST client. ari/v5's native client takes no
// context, ignores its own timeout and loses a 404's status code, so the
// call path uses this one: every call is bounded by the context's deadline,
// or by timeout when the context has none, and by the http.Client's
// Timeout whatever the context says.
type rest struct {
	base     string // http://host:port/ari
	user     string
	password string
	timeout  time.Duration
	http     *http.Client
}

func newREST(base, user, password string, timeout time.Duration) *rest {
	return &rest{
		base:     strings.TrimSuffix(base, "/"),
		user:     user,
		password: password,
		timeout:  timeout,
		http: &http.Client{
			// A hard bound beside the per-call context: nothing on the call
			// path can wait longer than twice the configured timeout.
			Timeout: 2 * timeout,
			Transport: &http.Transport{
				Proxy:               nil, // ARI is next to us; never through an HTTP proxy.
				DialContext:         (&net.Dialer{Timeout: timeout}).DialContext,
				MaxIdleConnsPerHost: 16,
				IdleConnTimeout:     90 * time.Second,
			},
		},
	}
}

func (r *rest) close() { r.http.CloseIdleConnections() }

func (r *rest) do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	u := r.base + path
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
	req.SetBasicAuth(r.user, r.password)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := r.http.Do(req)
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
		return &APIError{Method: method, Path: path, Status: resp.StatusCode, Message: msg.Message}
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("ari %s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}

func esc(s string) string { return url.PathEscape(s) }

// info is GET /asterisk/info; it proves ARI answers.
func (r *rest) info(ctx context.Context) (ari.AsteriskInfo, error) {
	var info ari.AsteriskInfo
	err := r.do(ctx, http.MethodGet, "/asterisk/info", nil, nil, &info)
	return info, err
}

func (r *rest) channels(ctx context.Context) ([]ari.ChannelData, error) {
	var out []ari.ChannelData
	err := r.do(ctx, http.MethodGet, "/channels", nil, nil, &out)
	return out, err
}

func (r *rest) channel(ctx context.Context, id string) (ari.ChannelData, error) {
	var out ari.ChannelData
	err := r.do(ctx, http.MethodGet, "/channels/"+esc(id), nil, nil, &out)
	return out, err
}

func (r *rest) bridges(ctx context.Context) ([]ari.BridgeData, error) {
	var out []ari.BridgeData
	err := r.do(ctx, http.MethodGet, "/bridges", nil, nil, &out)
	return out, err
}

// getVar reads a channel variable; errors.Is(err, ErrNotFound) when unset.
func (r *rest) getVar(ctx context.Context, channelID, name string) (string, error) {
	var v struct {
		Value string `json:"value"`
	}
	err := r.do(ctx, http.MethodGet, "/channels/"+esc(channelID)+"/variable", url.Values{"variable": {name}}, nil, &v)
	return v.Value, err
}

func (r *rest) setVar(ctx context.Context, channelID, name, value string) error {
	return r.do(ctx, http.MethodPost, "/channels/"+esc(channelID)+"/variable",
		url.Values{"variable": {name}, "value": {value}}, nil, nil)
}

func (r *rest) answer(ctx context.Context, channelID string) error {
	return r.do(ctx, http.MethodPost, "/channels/"+esc(channelID)+"/answer", nil, nil, nil)
}

// continueDialplan leaves Stasis at the next priority.
func (r *rest) continueDialplan(ctx context.Context, channelID string) error {
	return r.do(ctx, http.MethodPost, "/channels/"+esc(channelID)+"/continue", nil, nil, nil)
}

func (r *rest) hangup(ctx context.Context, channelID, reason string) error {
	var q url.Values
	if reason != "" {
		q = url.Values{"reason": {reason}}
	}
	return r.do(ctx, http.MethodDelete, "/channels/"+esc(channelID), q, nil, nil)
}

// snoop creates a snoop channel with id snoopID on channelID, placed in app.
func (r *rest) snoop(ctx context.Context, channelID, snoopID, app, appArgs string, spy, whisper ari.Direction) (ari.ChannelData, error) {
	var out ari.ChannelData
	q := url.Values{"app": {app}, "spy": {string(spy)}, "whisper": {string(whisper)}, "snoopId": {snoopID}}
	if appArgs != "" {
		q.Set("appArgs", appArgs)
	}
	err := r.do(ctx, http.MethodPost, "/channels/"+esc(channelID)+"/snoop", q, nil, &out)
	return out, err
}

func (r *rest) play(ctx context.Context, channelID, playbackID, media string) error {
	return r.do(ctx, http.MethodPost, "/channels/"+esc(channelID)+"/play/"+esc(playbackID),
		url.Values{"media": {media}}, nil, nil)
}

// controlPlayback sends restart, pause, unpause, reverse or forward.
func (r *rest) controlPlayback(ctx context.Context, playbackID, op string) error {
	return r.do(ctx, http.MethodPost, "/playbacks/"+esc(playbackID)+"/control", url.Values{"operation": {op}}, nil, nil)
}

// playbackState is the playback's state as Asterisk sees it (queued,
// playing, paused, ...).
func (r *rest) playbackState(ctx context.Context, playbackID string) (string, error) {
	var p ari.PlaybackData
	err := r.do(ctx, http.MethodGet, "/playbacks/"+esc(playbackID), nil, nil, &p)
	return p.State, err
}

func (r *rest) stopPlayback(ctx context.Context, playbackID string) error {
	return r.do(ctx, http.MethodDelete, "/playbacks/"+esc(playbackID), nil, nil, nil)
}

func (r *rest) createBridge(ctx context.Context, bridgeID, name string) error {
	return r.do(ctx, http.MethodPost, "/bridges/"+esc(bridgeID),
		url.Values{"type": {"mixing"}, "name": {name}}, nil, nil)
}

func (r *rest) addToBridge(ctx context.Context, bridgeID string, channelIDs ...string) error {
	return r.do(ctx, http.MethodPost, "/bridges/"+esc(bridgeID)+"/addChannel",
		url.Values{"channel": {strings.Join(channelIDs, ",")}}, nil, nil)
}

func (r *rest) removeFromBridge(ctx context.Context, bridgeID, channelID string) error {
	return r.do(ctx, http.MethodPost, "/bridges/"+esc(bridgeID)+"/removeChannel",
		url.Values{"channel": {channelID}}, nil, nil)
}

func (r *rest) destroyBridge(ctx context.Context, bridgeID string) error {
	return r.do(ctx, http.MethodDelete, "/bridges/"+esc(bridgeID), nil, nil, nil)
}

// record starts a live recording of channelID named name.
func (r *rest) record(ctx context.Context, channelID, name, format string) (ari.LiveRecordingData, error) {
	var out ari.LiveRecordingData
	err := r.do(ctx, http.MethodPost, "/channels/"+esc(channelID)+"/record",
		url.Values{"name": {name}, "format": {format}, "ifExists": {"fail"}, "beep": {"false"}}, nil, &out)
	return out, err
}

func (r *rest) liveRecording(ctx context.Context, name string) (ari.LiveRecordingData, error) {
	var out ari.LiveRecordingData
	err := r.do(ctx, http.MethodGet, "/recordings/live/"+esc(name), nil, nil, &out)
	return out, err
}

func (r *rest) pauseRecording(ctx context.Context, name string) error {
	return r.do(ctx, http.MethodPost, "/recordings/live/"+esc(name)+"/pause", nil, nil, nil)
}

func (r *rest) unpauseRecording(ctx context.Context, name string) error {
	return r.do(ctx, http.MethodDelete, "/recordings/live/"+esc(name)+"/pause", nil, nil, nil)
}

func (r *rest) stopRecording(ctx context.Context, name string) error {
	return r.do(ctx, http.MethodPost, "/recordings/live/"+esc(name)+"/stop", nil, nil, nil)
}

// eventTypeFilter is the body of PUT /applications/{app}/eventFilter.
type eventTypeFilter struct {
	Allowed []eventType `json:"allowed"`
}

type eventType struct {
	Type string `json:"type"`
}

// setEventFilter makes Asterisk send app only the given event types.
// watchAll subscribes app to the events of every channel and bridge of the
// PBX (what the watchdog needs), but not to endpoints or device states
// (see eventsURL).
func (r *rest) watchAll(ctx context.Context, app string) error {
	q := url.Values{"eventSource": {"channel:,bridge:"}}
	return r.do(ctx, http.MethodPost, "/applications/"+esc(app)+"/subscription", q, nil, nil)
}

func (r *rest) setEventFilter(ctx context.Context, app string, types []string) error {
	f := eventTypeFilter{Allowed: make([]eventType, len(types))}
	for i, t := range types {
		f.Allowed[i] = eventType{Type: t}
	}
	return r.do(ctx, http.MethodPut, "/applications/"+esc(app)+"/eventFilter", nil, f, nil)
}

// listedChannel is a channel of GET /channels with what ari.ChannelData
// leaves out: the dialplan application it runs (Stasis and its arguments
// for a channel in a Stasis application).
type listedChannel struct {
	ID       string        `json:"id"`
	Name     string        `json:"name"`
	State    string        `json:"state"`
	Caller   *ari.CallerID `json:"caller"`
	Dialplan struct {
		AppName string `json:"app_name"`
		AppData string `json:"app_data"`
	} `json:"dialplan"`
}

func (c listedChannel) data() ari.ChannelData {
	return ari.ChannelData{ID: c.ID, Name: c.Name, State: c.State, Caller: c.Caller}
}

// stasisArgs returns the arguments of the Stasis application app the
// channel is in; ok is false when it is not in app.
func (c listedChannel) stasisArgs(app string) (args []string, ok bool) {
	if !strings.EqualFold(c.Dialplan.AppName, "Stasis") {
		return nil, false
	}
	parts := strings.Split(c.Dialplan.AppData, ",")
	if parts[0] != app {
		return nil, false
	}
	return parts[1:], true
}

func (r *rest) listedChannel(ctx context.Context, id string) (listedChannel, error) {
	var out listedChannel
	err := r.do(ctx, http.MethodGet, "/channels/"+esc(id), nil, nil, &out)
	return out, err
}

func (r *rest) listChannels(ctx context.Context) ([]listedChannel, error) {
	var out []listedChannel
	err := r.do(ctx, http.MethodGet, "/channels", nil, nil, &out)
	return out, err
}

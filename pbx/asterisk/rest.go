package asterisk

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/CyCoreSystems/ari/v5"

	"github.com/callwarden/callwarden/pbx/asterisk/ariclient"
)

// The ARI errors the adapter classifies: a 404 (the channel, bridge,
// playback or recording is gone) and a 409 (wrong state).
var (
	ErrNotFound = ariclient.ErrNotFound
	ErrConflict = ariclient.ErrConflict
)

// rest is the adapter's typed view of ARI REST: one method per call the
// adapter makes, all through the one ARI client (ariclient), whose every
// call takes a context and has a deadline.
type rest struct {
	*ariclient.Client
}

func newREST(base, user, password string, timeout time.Duration) *rest {
	return &rest{Client: ariclient.New(base, user, password, timeout)}
}

func (r *rest) close() { r.Close() }

func (r *rest) do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	return r.Do(ctx, method, path, query, body, out)
}

func esc(s string) string { return ariclient.Esc(s) }

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

// move sends a channel in Stasis to application app with args (comma
// separated), as if it had entered Stasis(app,args).
func (r *rest) move(ctx context.Context, channelID, app, args string) error {
	q := url.Values{"app": {app}}
	if args != "" {
		q.Set("appArgs", args)
	}
	return r.do(ctx, http.MethodPost, "/channels/"+esc(channelID)+"/move", q, nil, nil)
}

// application asks for Stasis application app: errors.Is(err, ErrNotFound)
// when no websocket registers it.
func (r *rest) application(ctx context.Context, app string) error {
	return r.do(ctx, http.MethodGet, "/applications/"+esc(app), nil, nil, nil)
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

// mute stops (on) or restores the audio the channel sends into Asterisk
// (direction in): for a snoop, what it hears of the call.
func (r *rest) mute(ctx context.Context, channelID string, on bool) error {
	method := http.MethodDelete
	if on {
		method = http.MethodPost
	}
	return r.do(ctx, method, "/channels/"+esc(channelID)+"/mute", url.Values{"direction": {"in"}}, nil, nil)
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

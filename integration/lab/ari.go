package lab

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/callwarden/callwarden/pbx/asterisk/ariclient"
)

// DefaultTimeout bounds every ARI or Redis call whose context carries no deadline.
const DefaultTimeout = 10 * time.Second

// ErrNotFound is matched (errors.Is) by an ARI 404: no such channel, bridge or
// variable. It is the one ARI client's (ariclient.ErrNotFound).
var ErrNotFound = ariclient.ErrNotFound

// ARIError is a non-2xx answer of the ARI REST API (ariclient.Error).
type ARIError = ariclient.Error

// ARI is the tests' view of Asterisk's REST interface: the one ARI client
// (ariclient) used as a second ARI user, with typed answers for what the tests
// read. Every call is bounded by DefaultTimeout.
type ARI struct {
	c *ariclient.Client
}

// NewARI returns a client of the ARI at base (e.g. http://127.0.0.1:8088/ari).
func NewARI(base, user, password string) *ARI {
	return &ARI{c: ariclient.New(base, user, password, DefaultTimeout)}
}

// Close drops the client's idle connections.
func (a *ARI) Close() { a.c.Close() }

// Do calls ARI REST (see ariclient.Client.Do); out may be nil. A 404 matches
// ErrNotFound.
func (a *ARI) Do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	return a.c.Do(ctx, method, path, query, body, out)
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

// Info returns GET /asterisk/info.
func (a *ARI) Info(ctx context.Context) (AsteriskInfo, error) {
	var info AsteriskInfo
	err := a.c.Do(ctx, http.MethodGet, "/asterisk/info", nil, nil, &info)
	return info, err
}

// Originate creates a channel (POST /channels) and returns it as Asterisk first sees it.
func (a *ARI) Originate(ctx context.Context, p OriginateParams) (Channel, error) {
	var ch Channel
	err := a.c.Do(ctx, http.MethodPost, "/channels", nil, p, &ch)
	return ch, err
}

// Channels lists every channel of Asterisk, in Stasis or not.
func (a *ARI) Channels(ctx context.Context) ([]Channel, error) {
	var chans []Channel
	err := a.c.Do(ctx, http.MethodGet, "/channels", nil, nil, &chans)
	return chans, err
}

// Channel returns one channel; errors.Is(err, ErrNotFound) once it is gone.
func (a *ARI) Channel(ctx context.Context, id string) (Channel, error) {
	var ch Channel
	err := a.c.Do(ctx, http.MethodGet, "/channels/"+url.PathEscape(id), nil, nil, &ch)
	return ch, err
}

// Bridges lists every bridge of Asterisk, including the ones app_queue makes.
func (a *ARI) Bridges(ctx context.Context) ([]Bridge, error) {
	var bridges []Bridge
	err := a.c.Do(ctx, http.MethodGet, "/bridges", nil, nil, &bridges)
	return bridges, err
}

// ChannelVar reads a channel variable (or dialplan function); errors.Is(err,
// ErrNotFound) when the variable is not set.
func (a *ARI) ChannelVar(ctx context.Context, channelID, name string) (string, error) {
	var v struct {
		Value string `json:"value"`
	}
	err := a.c.Do(ctx, http.MethodGet, "/channels/"+url.PathEscape(channelID)+"/variable",
		url.Values{"variable": {name}}, nil, &v)
	return v.Value, err
}

// Hangup hangs a channel up; errors.Is(err, ErrNotFound) if it is already gone.
func (a *ARI) Hangup(ctx context.Context, channelID string) error {
	return a.c.Do(ctx, http.MethodDelete, "/channels/"+url.PathEscape(channelID), nil, nil, nil)
}

// Events registers the Stasis application app, subscribed to every channel and bridge
// event, and starts recording its events. ctx bounds the connection only;
// Close the stream when done.
func (a *ARI) Events(ctx context.Context, app string) (*EventStream, error) {
	ctx, cancel := withDeadline(ctx)
	defer cancel()
	wsURL, err := a.c.EventsURL("", app)
	if err != nil {
		return nil, fmt.Errorf("ari events: %w", err)
	}
	ws, err := a.c.DialEvents(ctx, wsURL)
	if err != nil {
		return nil, fmt.Errorf("ari events for app %s: %w", app, err)
	}
	stream := newEventStream(ws)
	// Asterisk answers the upgrade before it registers the application; wait until the
	// application exists so events of the caller's next action cannot be missed.
	if err := a.c.WaitApplication(ctx, app); err != nil {
		return nil, errors.Join(fmt.Errorf("ari %w", err), stream.Close())
	}
	// Every channel and bridge, but not subscribeAll (see ariclient.Client.EventsURL).
	if err := a.c.WatchAll(ctx, app); err != nil {
		return nil, errors.Join(fmt.Errorf("ari events: subscribe %s to every channel and bridge: %w", app, err), stream.Close())
	}
	return stream, nil
}

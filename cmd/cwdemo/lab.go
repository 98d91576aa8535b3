package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/callwarden/callwarden/integration/lab"
)

// pollInterval is how often the demo re-reads ARI while it waits for a state.
const pollInterval = 100 * time.Millisecond

// observerApp is the demo's own ARI application: subscribed to every event of
// the PBX (what the demo prints comes from there and from ARI REST), and the
// Stasis application the demo's scripted handsets enter so the demo can press
// keys on them.
const observerApp = "cwdemo"

// pbx is the demo's view of Asterisk: the lab's ARI client (the one ARI
// client, ariclient, as the demo's own ARI user) and the observer's event
// stream.
type pbx struct {
	lab    *lab.Lab
	events *lab.EventStream
}

func newPBX(l *lab.Lab) *pbx {
	return &pbx{lab: l}
}

// do calls ARI REST through the lab's client; out may be nil. A 404 matches
// lab.ErrNotFound.
func (p *pbx) do(ctx context.Context, method, path string, query url.Values, out any) error {
	return p.lab.ARI.Do(ctx, method, path, query, nil, out)
}

// sendDTMF presses digits on a channel that is in a Stasis application: the
// digits go out of it, to whatever is at the other end.
func (p *pbx) sendDTMF(ctx context.Context, channelID, digits string) error {
	return p.do(ctx, http.MethodPost, "/channels/"+url.PathEscape(channelID)+"/dtmf",
		url.Values{"dtmf": {digits}, "duration": {"120"}}, nil)
}

// applicationRegistered reports whether an ARI application of that name is
// connected to Asterisk.
func (p *pbx) applicationRegistered(ctx context.Context, app string) (bool, error) {
	err := p.do(ctx, http.MethodGet, "/applications/"+url.PathEscape(app), nil, nil)
	if errors.Is(err, lab.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// liveRecording is an ARI LiveRecording.
type liveRecording struct {
	Name      string `json:"name"`
	Format    string `json:"format"`
	State     string `json:"state"`
	TargetURI string `json:"target_uri"`
	Duration  int    `json:"duration"`
}

// storedRecording is an ARI StoredRecording.
type storedRecording struct {
	Name   string `json:"name"`
	Format string `json:"format"`
}

func (p *pbx) liveRecording(ctx context.Context, name string) (liveRecording, error) {
	var r liveRecording
	err := p.do(ctx, http.MethodGet, "/recordings/live/"+url.PathEscape(name), nil, &r)
	return r, err
}

func (p *pbx) storedRecording(ctx context.Context, name string) (storedRecording, error) {
	var r storedRecording
	err := p.do(ctx, http.MethodGet, "/recordings/stored/"+url.PathEscape(name), nil, &r)
	return r, err
}

// eventDetail are the fields of ARI events the demo prints beyond those of
// lab.Event, decoded from the raw message.
type eventDetail struct {
	Digit    string `json:"digit"`
	CauseTxt string `json:"cause_txt"`
	Playback *struct {
		ID        string `json:"id"`
		MediaURI  string `json:"media_uri"`
		TargetURI string `json:"target_uri"`
		State     string `json:"state"`
	} `json:"playback"`
	Recording *liveRecording `json:"recording"`
}

func detail(ev lab.Event) eventDetail {
	var d eventDetail
	_ = json.Unmarshal(ev.Raw, &d) // lab.EventStream decoded it already once
	return d
}

// wait waits, up to d, for the first event since the stream started that
// matches; what names it in the error.
func (p *pbx) wait(ctx context.Context, d time.Duration, what string, match func(lab.Event) bool) (lab.Event, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return p.events.Wait(ctx, what, match)
}

// find returns the first event recorded so far that matches.
func (p *pbx) find(match func(lab.Event) bool) (lab.Event, bool) {
	for _, ev := range p.events.Events() {
		if match(ev) {
			return ev, true
		}
	}
	return lab.Event{}, false
}

// eventsOn returns the events recorded so far about channel id, of the given
// types (all types when none is given).
func (p *pbx) eventsOn(id string, types ...string) []lab.Event {
	var out []lab.Event
	for _, ev := range p.events.Events() {
		if ev.ChannelID() != id {
			continue
		}
		if len(types) == 0 || contains(types, ev.Type) {
			out = append(out, ev)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// monitorLeg is a supervisor's channel bridged with a snoop channel: what a
// monitor session looks like in Asterisk.
type monitorLeg struct {
	Bridge lab.Bridge
	Snoop  lab.Channel
	// Spied is the channel the snoop is attached to (Snoop/<its id>-NNN).
	Spied lab.Channel
}

// findMonitorLeg returns the bridge holding channel sup and a snoop channel,
// if any. A snoop in skip is ignored.
func (p *pbx) findMonitorLeg(ctx context.Context, sup string, skip map[string]bool) (monitorLeg, bool, error) {
	bridges, err := p.lab.ARI.Bridges(ctx)
	if err != nil {
		return monitorLeg{}, false, err
	}
	var chans []lab.Channel
	for _, b := range bridges {
		if !b.Has(sup) {
			continue
		}
		if chans == nil {
			if chans, err = p.lab.ARI.Channels(ctx); err != nil {
				return monitorLeg{}, false, err
			}
		}
		byID := make(map[string]lab.Channel, len(chans))
		for _, c := range chans {
			byID[c.ID] = c
		}
		for _, id := range b.Channels {
			c, ok := byID[id]
			if !ok || skip[id] || !strings.HasPrefix(c.Name, "Snoop/") {
				continue
			}
			leg := monitorLeg{Bridge: b, Snoop: c}
			if target, ok := snoopTarget(c.Name); ok {
				leg.Spied = byID[target]
				leg.Spied.ID = target
			}
			return leg, true, nil
		}
	}
	return monitorLeg{}, false, nil
}

// waitMonitorLeg polls ARI, up to d, until channel sup is bridged with a
// snoop channel not in skip.
func (p *pbx) waitMonitorLeg(ctx context.Context, d time.Duration, sup string, skip map[string]bool) (monitorLeg, error) {
	var leg monitorLeg
	err := poll(ctx, d, func(ctx context.Context) (bool, error) {
		var ok bool
		var err error
		leg, ok, err = p.findMonitorLeg(ctx, sup, skip)
		return ok, err
	})
	if errors.Is(err, errPollTimeout) {
		return leg, fmt.Errorf("no bridge holds %s and a snoop channel after %s", sup, d)
	}
	return leg, err
}

// waitGone waits, up to d, for channel id to be destroyed and returns the
// ChannelDestroyed event.
func (p *pbx) waitGone(ctx context.Context, d time.Duration, id string) (lab.Event, error) {
	return p.wait(ctx, d, "ChannelDestroyed of "+id, lab.OnChannel("ChannelDestroyed", id))
}

// hangup hangs a channel up, ignoring one that is already gone.
func (p *pbx) hangup(ctx context.Context, id string) error {
	if err := p.lab.ARI.Hangup(ctx, id); err != nil && !errors.Is(err, lab.ErrNotFound) {
		return err
	}
	return nil
}

// describeDialplan returns what channel id ran in the dialplan, in order,
// e.g. "Stasis(callwarden,monitor,listen,2001)", from ChannelDialplan events.
func (p *pbx) describeDialplan(id string, apps ...string) []string {
	var out []string
	for _, ev := range p.eventsOn(id, "ChannelDialplan") {
		if len(apps) > 0 && !contains(apps, ev.DialplanApp) {
			continue
		}
		out = append(out, ev.DialplanApp+"("+ev.DialplanAppData+")")
	}
	return out
}

// hangupSummary describes how channel id ended, from its ChannelDestroyed
// event.
func (p *pbx) hangupSummary(id string) string {
	destroyed := p.eventsOn(id, "ChannelDestroyed")
	if len(destroyed) == 0 {
		return "still up"
	}
	ev := destroyed[0]
	return "hung up with " + formatCause(ev.Cause, detail(ev).CauseTxt)
}

// playbacksOn returns the media played to channel id (PlaybackStarted
// events), e.g. "sound:ss-noservice" or "recording:<name>".
func (p *pbx) playbacksOn(id string) []string {
	var out []string
	for _, ev := range p.events.Events() {
		if ev.Type != "PlaybackStarted" {
			continue
		}
		d := detail(ev)
		if d.Playback != nil && d.Playback.TargetURI == "channel:"+id {
			out = append(out, d.Playback.MediaURI)
		}
	}
	return out
}

// varsetOn returns the values channel variable name took on channel id.
func (p *pbx) varsetOn(id, name string) []string {
	var out []string
	for _, ev := range p.eventsOn(id, "ChannelVarset") {
		if ev.Variable == name {
			out = append(out, ev.Value)
		}
	}
	return out
}

// errPollTimeout is what poll returns when its time ran out without any
// error to report.
var errPollTimeout = errors.New("timed out")

// poll calls try every pollInterval until it reports done or d has passed.
// It returns nil when done; otherwise the last error try returned while
// time remained (an error caused by the deadline itself says nothing), or
// errPollTimeout.
func poll(ctx context.Context, d time.Duration, try func(ctx context.Context) (done bool, err error)) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	var last error
	for {
		done, err := try(ctx)
		if done {
			return nil
		}
		if ctx.Err() == nil {
			last = err
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			if last != nil {
				return last
			}
			return errPollTimeout
		}
	}
}

// stopTimeout bounds callwarden's graceful shutdown after SIGTERM; then it is
// killed.
const stopTimeout = 15 * time.Second

// daemon is the callwarden serve child process.
type daemon struct {
	cmd     *exec.Cmd
	addr    string // 127.0.0.1:port of its HTTP API
	logPath string
	exited  chan struct{}
	waitErr error
}

// runCLI runs a callwarden subcommand to completion and returns its
// combined output.
func runCLI(ctx context.Context, bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = lab.CallwardenEnv()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", filepath.Base(bin), strings.Join(args, " "), err, oneLine(out.String()))
	}
	return out.String(), nil
}

// freeAddrOn returns host:port with a TCP port free on host right now.
func freeAddrOn(host string) (string, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", fmt.Errorf("find a free port on %s: %w", host, err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// startDaemon starts `callwarden serve --config cfgPath`, logging to
// logPath. The child gets its own process group, so a Ctrl-C in the terminal
// reaches the demo only, which then stops it in order; and it is killed if
// the demo dies.
func startDaemon(bin, cfgPath, logPath, addr string, env ...string) (*daemon, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("callwarden log: %w", err)
	}
	cmd := lab.ServeCommand(bin, cfgPath, logf, env...)
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s serve: %w", bin, err)
	}
	d := &daemon{cmd: cmd, addr: addr, logPath: logPath, exited: make(chan struct{})}
	go func() {
		d.waitErr = cmd.Wait()
		logf.Close()
		close(d.exited)
	}()
	return d, nil
}

// waitReady waits, up to timeout, until callwarden answers /readyz with 200.
// It fails at once if the process exits.
func (d *daemon) waitReady(ctx context.Context, timeout time.Duration) error {
	return d.waitHTTP(ctx, timeout, "/readyz", "ready", func(code int, _ string) bool { return code == http.StatusOK })
}

// waitMetric waits, up to timeout, until callwarden's /metrics has line
// (e.g. "callwarden_freeswitch_connected 1").
func (d *daemon) waitMetric(ctx context.Context, timeout time.Duration, line string) error {
	return d.waitHTTP(ctx, timeout, "/metrics", "showing "+line, func(_ int, body string) bool {
		return strings.Contains(body, "\n"+line+"\n")
	})
}

// waitHTTP polls GET path until ok accepts the status and body; it fails
// at once if the process exits.
func (d *daemon) waitHTTP(ctx context.Context, timeout time.Duration, path, what string, ok func(code int, body string) bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil}}
	defer client.CloseIdleConnections()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	var last string
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+d.addr+path, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			var body bytes.Buffer
			_, rerr := body.ReadFrom(resp.Body) // callwarden's own /readyz or /metrics
			resp.Body.Close()
			if rerr == nil && ok(resp.StatusCode, body.String()) {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-d.exited:
			return fmt.Errorf("callwarden exited: %v (see %s)", d.waitErr, d.logPath)
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("callwarden not %s after %s: %s (see %s)", what, timeout, oneLine(last), d.logPath)
		}
	}
}

// stop sends SIGTERM and waits for a graceful exit, killing the process
// after stopTimeout. It returns how it ended.
func (d *daemon) stop() (string, error) {
	select {
	case <-d.exited:
		return "", fmt.Errorf("callwarden had already exited: %v (see %s)", d.waitErr, d.logPath)
	default:
	}
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return "", fmt.Errorf("signal callwarden: %w", err)
	}
	select {
	case <-d.exited:
		if d.waitErr != nil {
			return "", fmt.Errorf("callwarden stopped with %v (see %s)", d.waitErr, d.logPath)
		}
		return "stopped cleanly on SIGTERM", nil
	case <-time.After(stopTimeout):
		_ = d.cmd.Process.Kill()
		<-d.exited
		return "", fmt.Errorf("callwarden did not stop within %s of SIGTERM: killed (see %s)", stopTimeout, d.logPath)
	}
}

// running reports whether the process is still up.
func (d *daemon) running() bool {
	select {
	case <-d.exited:
		return false
	default:
		return true
	}
}

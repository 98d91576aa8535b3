package main

// The FreeSWITCH run (--pbx freeswitch, `make demo PBX=freeswitch`): the lab's
// FreeSWITCH 1.10.12 and Redis, `callwarden serve` with a freeswitch: section,
// and calls made with originate over ESL: loopback pairs whose legs play the
// lab's tones and dial the lab's feature codes
// (deploy/lab/freeswitch/conf/dialplan). Every fact a step prints is read from
// FreeSWITCH (its events, `show channels`, the recording file), never from
// callwarden.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/callwarden/callwarden/config"
	"github.com/callwarden/callwarden/integration/lab"
)

// fsPBX is the FreeSWITCH lab of a run and the demo's own view of it: an
// inbound ESL connection subscribed to the events the steps read.
type fsPBX struct {
	fs *lab.FreeSWITCH
	// socket is where the dialplan's socket application reaches callwarden
	// (its outbound_listen, on the address the container reaches this host at).
	socket string

	esl    *lab.ESL
	done   chan struct{}
	mu     sync.Mutex
	events []map[string]string
}

// fsEvents are the events the observer subscribes to.
const fsEvents = "CHANNEL_EXECUTE CHANNEL_HANGUP_COMPLETE RECORD_START RECORD_STOP"

// maxFSEvents bounds the events kept (a run sees a few hundred).
const maxFSEvents = 20000

// setupFreeSWITCH starts FreeSWITCH and Redis, applies the profiles, starts
// callwarden with a freeswitch: section and waits until it is connected to
// FreeSWITCH's event socket.
func (d *demo) setupFreeSWITCH(ctx context.Context) error {
	d.printf("\n== starting the lab: FreeSWITCH (%s) and Redis (%s)\n", lab.FreeSWITCHImage, lab.RedisImage)
	t0 := time.Now()
	sctx, cancel := context.WithTimeout(ctx, labStartTimeout)
	defer cancel()
	var err error
	if d.lab, err = lab.StartRedis(sctx); err != nil {
		return fmt.Errorf("start Redis: %w", err)
	}
	fs, err := lab.StartFreeSWITCH(sctx, lab.FreeSWITCHOptions{})
	if err != nil {
		return fmt.Errorf("start FreeSWITCH: %w", err)
	}
	d.fs = &fsPBX{fs: fs}
	port, err := freePortOn(fs.HostIP)
	if err != nil {
		return err
	}
	d.fs.socket = net.JoinHostPort(fs.HostIP, strconv.Itoa(port))
	version, err := fs.API(ctx, "version")
	if err != nil {
		return err
	}
	d.printf("   up in %s: %s, ESL %s, Redis %s\n", time.Since(t0).Round(100*time.Millisecond),
		oneLine(strings.TrimSpace(version)), fs.ESLAddr(), d.lab.RedisAddr)
	if err := d.applyProfiles(ctx); err != nil {
		return err
	}
	if err := d.fs.observe(ctx); err != nil {
		return err
	}
	cfg := func(httpPort int) string {
		return fmt.Sprintf(`http:
  listen: "127.0.0.1:%d"
log:
  level: debug
  format: json
freeswitch:
  esl_address: %q
  outbound_listen: %q
  pbx: fslab
redis:
  addrs: [%q]
  prefix: %q
`, httpPort, fs.ESLAddr(), d.fs.socket, d.lab.RedisAddr, config.Default().Redis.Prefix)
	}
	// The ESL password goes in the environment, as in a deployment.
	if err := d.startCallwarden(ctx, cfg, config.EnvFreeSWITCHESLPassword+"="+fs.ESLPassword); err != nil {
		return err
	}
	if err := d.waitESLConnected(ctx); err != nil {
		return err
	}
	d.printf("   ready: HTTP API on %s; callwarden is connected to FreeSWITCH's event socket and takes the dialplan's socket on %s\n",
		d.daemon.addr, d.fs.socket)
	return nil
}

// waitESLConnected waits until callwarden's metrics say its inbound ESL
// connection is up.
func (d *demo) waitESLConnected(ctx context.Context) error {
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil}}
	defer client.CloseIdleConnections()
	err := poll(ctx, readyTimeout, func(ctx context.Context) (bool, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+d.daemon.addr+"/metrics", nil)
		if err != nil {
			return false, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return false, nil
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return err == nil && strings.Contains(string(body), "\ncallwarden_freeswitch_connected 1"), nil
	})
	if errors.Is(err, errPollTimeout) {
		return fmt.Errorf("callwarden not connected to FreeSWITCH's event socket after %s (see %s)", readyTimeout, d.daemon.logPath)
	}
	return err
}

// freePortOn returns a TCP port free on host right now.
func freePortOn(host string) (int, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("find a free port on %s: %w", host, err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// observe subscribes an ESL connection of the demo's own to fsEvents and
// keeps every event until close.
func (p *fsPBX) observe(ctx context.Context) error {
	c, err := p.fs.DialESL(ctx)
	if err != nil {
		return fmt.Errorf("observe FreeSWITCH: %w", err)
	}
	if _, err := c.Command(ctx, "event plain "+fsEvents); err != nil {
		_ = c.Close()
		return fmt.Errorf("observe FreeSWITCH: %w", err)
	}
	p.esl, p.done = c, make(chan struct{})
	go func() {
		defer close(p.done)
		for {
			msg, err := c.NextEvent(context.Background())
			if errors.Is(err, context.DeadlineExceeded) {
				continue
			}
			if err != nil {
				return // closed
			}
			h := msg.EventHeaders()
			if h["Event-Name"] == "" {
				continue
			}
			p.mu.Lock()
			if len(p.events) < maxFSEvents {
				p.events = append(p.events, h)
			}
			p.mu.Unlock()
		}
	}()
	return nil
}

// find returns the first event match accepts.
func (p *fsPBX) find(match func(h map[string]string) bool) (map[string]string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, h := range p.events {
		if match(h) {
			return h, true
		}
	}
	return nil, false
}

// wait waits up to d for an event match accepts.
func (p *fsPBX) wait(ctx context.Context, d time.Duration, what string, match func(h map[string]string) bool) (map[string]string, error) {
	var ev map[string]string
	err := poll(ctx, d, func(context.Context) (bool, error) {
		var ok bool
		ev, ok = p.find(match)
		return ok, nil
	})
	if errors.Is(err, errPollTimeout) {
		return nil, fmt.Errorf("no %s within %s", what, d)
	}
	return ev, err
}

// executes matches the start of application app on channel uuid.
func executes(uuid, app string) func(map[string]string) bool {
	return func(h map[string]string) bool {
		return h["Event-Name"] == "CHANNEL_EXECUTE" && h["Unique-ID"] == uuid && h["Application"] == app
	}
}

// event matches event name on channel uuid.
func event(name, uuid string) func(map[string]string) bool {
	return func(h map[string]string) bool { return h["Event-Name"] == name && h["Unique-ID"] == uuid }
}

// eventGapFS is the time between two events by FreeSWITCH's own clock.
func eventGapFS(from, to map[string]string) string {
	a, errA := strconv.ParseInt(from["Event-Date-Timestamp"], 10, 64)
	b, errB := strconv.ParseInt(to["Event-Date-Timestamp"], 10, 64)
	if errA != nil || errB != nil {
		return "?"
	}
	return (time.Duration(b-a) * time.Microsecond).Round(time.Millisecond).String()
}

// originate runs `originate {vars}loopback/<bExten>/default <aExten> XML
// <aContext>` with origination_uuid id and returns the B leg's uuid (""
// when the call ended before it could be read).
func (p *fsPBX) originate(ctx context.Context, id, bExten, aExten, aContext string, vars ...string) (string, error) {
	all := append([]string{"origination_uuid=" + id}, vars...)
	cmd := fmt.Sprintf("originate {%s}loopback/%s/default %s XML %s", strings.Join(all, ","), bExten, aExten, aContext)
	out, err := p.fs.API(ctx, cmd)
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(out, "+OK") {
		return "", fmt.Errorf("%s: %s", cmd, strings.TrimSpace(out))
	}
	b, err := p.fs.API(ctx, "uuid_getvar "+id+" other_loopback_leg_uuid")
	if err != nil || strings.HasPrefix(b, "-ERR") {
		return "", nil
	}
	return strings.TrimSpace(b), nil
}

// row is the part of a `show channels as json` row the steps print.
type row struct {
	UUID        string `json:"uuid"`
	Name        string `json:"name"`
	Application string `json:"application"`
	AppData     string `json:"application_data"`
	PresenceID  string `json:"presence_id"`
}

// channel returns uuid's row of `show channels`.
func (p *fsPBX) channel(ctx context.Context, uuid string) (row, bool, error) {
	out, err := p.fs.API(ctx, "show channels as json")
	if err != nil {
		return row{}, false, err
	}
	var res struct {
		Rows []row `json:"rows"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		return row{}, false, fmt.Errorf("show channels as json: %w", err)
	}
	for _, r := range res.Rows {
		if r.UUID == uuid {
			return r, true, nil
		}
	}
	return row{}, false, nil
}

// hangup hangs uuid up; a channel already gone is not an error.
func (p *fsPBX) hangup(ctx context.Context, uuid string) error {
	out, err := p.fs.API(ctx, "uuid_kill "+uuid)
	if err != nil && !strings.Contains(err.Error(), "No such channel") {
		return err
	}
	_ = out
	return nil
}

// close stops observing, saves FreeSWITCH's log and the events seen beside
// callwarden's log, and removes the container.
func (p *fsPBX) close(ctx context.Context, d *demo) error {
	var errs []error
	if p.esl != nil {
		errs = append(errs, p.esl.Close())
		<-p.done
		p.mu.Lock()
		b, err := json.Marshal(p.events)
		p.mu.Unlock()
		if err == nil {
			path := filepath.Join(d.dir, "freeswitch-events.json")
			if os.WriteFile(path, b, 0o600) == nil {
				d.printf("   FreeSWITCH events seen by the demo: %s\n", path)
			}
		}
	}
	if logs, err := p.fs.Logs(ctx); err == nil {
		path := filepath.Join(d.dir, "freeswitch.log")
		if os.WriteFile(path, []byte(logs), 0o600) == nil {
			d.printf("   FreeSWITCH's console log: %s\n", path)
		}
	}
	errs = append(errs, p.fs.Close(ctx))
	return errors.Join(errs...)
}

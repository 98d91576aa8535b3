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
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/callwarden/callwarden/config"
	"github.com/callwarden/callwarden/enforce"
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
const fsEvents = "CHANNEL_EXECUTE CHANNEL_EXECUTE_COMPLETE CHANNEL_APPLICATION CHANNEL_HANGUP_COMPLETE RECORD_START RECORD_STOP"

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
	if d.fs.socket, err = freeAddrOn(fs.HostIP); err != nil {
		return err
	}
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
	cfg := func(httpAddr string) string {
		return fmt.Sprintf(`http:
  listen: %q
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
`, httpAddr, fs.ESLAddr(), d.fs.socket, d.lab.RedisAddr, config.Default().Redis.Prefix)
	}
	// The ESL password goes in the environment, as in a deployment.
	if err := d.startCallwarden(ctx, cfg, config.EnvFreeSWITCHESLPassword+"="+fs.ESLPassword); err != nil {
		return err
	}
	if err := d.daemon.waitMetric(ctx, readyTimeout, "callwarden_freeswitch_connected 1"); err != nil {
		return fmt.Errorf("callwarden's event socket connection: %w", err)
	}
	d.printf("   ready: HTTP API on %s; callwarden is connected to FreeSWITCH's event socket and takes the dialplan's socket on %s\n",
		d.daemon.addr, d.fs.socket)
	return nil
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

// The FreeSWITCH story: the Asterisk one (scenario.go), step for step, on
// the lab's FreeSWITCH through the dialplan's feature codes.

// customerNumber is the customer's caller id number on FreeSWITCH.
const customerNumber = "0612345678"

// fsCall is the customer's call answered by agent 2001: a loopback pair
// whose B leg, loopback/queue_sales_2001-b, is the agent's phone.
type fsCall struct {
	customer, agent string // uuids
}

// fsLine is a supervisor's call: the A leg (uuid) dials the feature code
// in context callwarden and is where eavesdrop runs and digits arrive.
type fsLine struct {
	who  actor
	uuid string
}

// fsScenario plays the steps in order and returns their results; it stops
// early only when ctx ends.
func (d *demo) fsScenario(ctx context.Context) []*stepResult {
	l := &stepList{ctx: ctx, out: d.out}
	d.printf("\n== a customer calls the %s queue; agent %s answers\n", queue, agentExt)
	call, err := d.fsCustomerCall(ctx)
	if err != nil {
		r := &stepResult{Title: "the customer's call is answered by agent " + agentExt, Want: "a loopback call between the customer and agent " + agentExt}
		r.failErr("no answered call to monitor", err)
		l.add(r)
		return l.results
	}
	var (
		line fsLine
		rec  enforce.Recording
	)
	l.play(
		func() (r *stepResult) { line, r = d.fsListen(ctx, call); return r },
		func() *stepResult { return d.fsSwitch(ctx, line, "5", "whisper") },
		func() *stepResult { return d.fsSwitch(ctx, line, "6", "barge") },
		func() *stepResult { return d.fsHangUp(ctx, line) },
		func() *stepResult { return d.fsRefused(ctx) },
		func() (r *stepResult) { rec, r = d.fsRecordStart(ctx, call); return r },
		func() *stepResult { return d.fsRecordStop(ctx, call, rec) },
		func() *stepResult { return d.fsPlayback(ctx, tina, rec, true) },
		func() *stepResult { return d.fsPlayback(ctx, tom, rec, false) },
		func() *stepResult { return d.fsRogueEavesdrop(ctx, call) },
		func() *stepResult { return d.auditVerify(ctx) },
	)
	return l.results
}

// fsCustomerCall makes the customer call queue sales, delivered to agent
// 2001 (the lab's queue_<queue>_<agent> extension stands for
// mod_callcenter and sets callwarden_queue), and waits until the agent's
// phone speaks and FreeSWITCH lists it with its presence id.
func (d *demo) fsCustomerCall(ctx context.Context) (fsCall, error) {
	id := d.newID("customer")
	d.track(id)
	agent, err := d.fs.originate(ctx, id, "queue_"+queue+"_"+agentExt, "customer", "default",
		"origination_caller_id_number="+customerNumber, "origination_caller_id_name=Customer",
		"origination_callee_id_number="+customerNumber, "origination_callee_id_name=Customer")
	if err != nil {
		return fsCall{}, err
	}
	if agent == "" {
		return fsCall{}, errors.New("the customer's call ended at once")
	}
	d.track(agent)
	var r row
	err = poll(ctx, d.opts.wait, func(ctx context.Context) (bool, error) {
		var ok bool
		r, ok, err = d.fs.channel(ctx, agent)
		return ok && r.Application == "playback" && r.PresenceID != "", err
	})
	if err != nil {
		return fsCall{}, fmt.Errorf("agent %s's phone never listed as talking: %w", agentExt, err)
	}
	d.printf("   PBX: %s (agent %s's phone, presence %s) talks with the customer's phone %s (caller id %s)\n",
		r.Name, agentExt, r.PresenceID, id, customerNumber)
	return fsCall{customer: id, agent: agent}, nil
}

// fsDial makes who dial exten from their handset (loopback/supervisor_<phone>),
// in context callwarden, whose socket reaches this run's callwarden.
func (d *demo) fsDial(ctx context.Context, who actor, exten string) (fsLine, error) {
	l := fsLine{who: who, uuid: d.newID(who.user)}
	d.track(l.uuid)
	b, err := d.fs.originate(ctx, l.uuid, "supervisor_"+who.phone, exten, "callwarden",
		"origination_caller_id_number="+who.phone, "origination_caller_id_name="+who.user,
		"origination_callee_id_number="+who.phone, "origination_callee_id_name="+who.user,
		"callwarden_socket="+d.fs.socket)
	if b != "" {
		d.track(b)
	}
	if err != nil {
		return l, fmt.Errorf("originate %s's line: %w", who.user, err)
	}
	return l, nil
}

// waitEavesdrop waits until line runs eavesdrop on the agent's phone.
func (d *demo) waitEavesdrop(ctx context.Context, r *stepResult, call fsCall, line fsLine) bool {
	ev, err := d.fs.wait(ctx, d.opts.wait, "eavesdrop on "+line.uuid, executes(line.uuid, "eavesdrop"))
	if err != nil {
		r.failErr(line.who.user+"'s line never eavesdropped", err)
		return false
	}
	if ev["Application-Data"] != call.agent {
		r.fail("%s eavesdrops on %s, not on agent %s's phone %s", ev["Channel-Name"], ev["Application-Data"], agentExt, call.agent)
		return false
	}
	r.pbx("%s runs eavesdrop(%s), agent %s's phone", ev["Channel-Name"], call.agent, agentExt)
	return true
}

// fsListen: alice dials *2222001 and must eavesdrop on agent 2001's phone.
func (d *demo) fsListen(ctx context.Context, call fsCall) (fsLine, *stepResult) {
	r, since := listenStep("alice's line runs eavesdrop on the agent's phone"), time.Now()
	line, err := d.fsDial(ctx, alice, "*222"+agentExt)
	switch {
	case err != nil:
		r.failErr("originate", err)
	default:
		d.waitEavesdrop(ctx, r, call, line)
		d.expectAudit(ctx, r, since, auditWant{User: alice.user, Action: "monitor.listen", Decision: "allow"})
	}
	return line, r
}

// fsSwitch: alice presses digit; the switch is decided again and the
// eavesdrop goes on. Who hears whom in each mode is proven by audio in the
// integration suite (integration/freeswitch_audio_test.go).
func (d *demo) fsSwitch(ctx context.Context, line fsLine, digit, mode string) *stepResult {
	r := &stepResult{
		Title: fmt.Sprintf("alice presses %s on her phone: switch to %s", digit, mode),
		Want:  fmt.Sprintf("the switch is decided again: audit allow monitor.%s; the eavesdrop on the agent's phone goes on", mode),
	}
	since := time.Now()
	if out, err := d.fs.fs.API(ctx, "uuid_recv_dtmf "+line.uuid+" ~"+digit); err != nil || !strings.HasPrefix(out, "+OK") {
		r.fail("press %s: %s %v", digit, strings.TrimSpace(out), err)
		return r
	}
	r.pbx("uuid_recv_dtmf %s ~%s: alice's line received DTMF %s as from her keypad", line.uuid, digit, digit)
	if ev, err := d.fs.wait(ctx, d.opts.wait, "the digit binding", func(h map[string]string) bool {
		return h["Event-Name"] == "CHANNEL_APPLICATION" && h["Unique-ID"] == line.uuid && h["callwarden_digit"] == digit
	}); err != nil {
		r.failErr("FreeSWITCH's digit binding never fired", err)
	} else {
		r.pbx("%s: the digit binding fired CHANNEL_APPLICATION callwarden_digit=%s", ev["Channel-Name"], digit)
	}
	d.expectAudit(ctx, r, since, auditWant{User: alice.user, Action: "monitor." + mode, Decision: "allow"})
	if ev, ok := d.fs.find(func(h map[string]string) bool {
		return h["Event-Name"] == "CHANNEL_EXECUTE_COMPLETE" && h["Unique-ID"] == line.uuid && h["Application"] == "eavesdrop"
	}); ok {
		r.fail("alice's eavesdrop ended: %s", ev["Application-Response"])
	} else {
		r.pbx("the eavesdrop goes on (no CHANNEL_EXECUTE_COMPLETE of eavesdrop on alice's line)")
	}
	return r
}

// fsHangUp: alice hangs up; the agent's call goes on.
func (d *demo) fsHangUp(ctx context.Context, line fsLine) *stepResult {
	r := &stepResult{
		Title: "alice hangs up",
		Want:  "alice's line is gone; the customer's call goes on",
	}
	if err := d.fs.hangup(ctx, line.uuid); err != nil {
		r.failErr("hang up", err)
		return r
	}
	if ev, err := d.fs.wait(ctx, d.opts.wait, "hang-up of alice's line", event("CHANNEL_HANGUP_COMPLETE", line.uuid)); err != nil {
		r.failErr("alice's line", err)
	} else {
		r.pbx("%s hung up (%s)", ev["Channel-Name"], ev["Hangup-Cause"])
	}
	return r
}

// wantRejected checks that line was refused by callwarden: it played the
// refusal and hung up with CALL_REJECTED, and never ran app.
func (d *demo) wantRejected(ctx context.Context, r *stepResult, line fsLine, app string) {
	hup, err := d.fs.wait(ctx, d.opts.wait, "hang-up of "+line.who.user+"'s line", event("CHANNEL_HANGUP_COMPLETE", line.uuid))
	if err != nil {
		r.failErr(line.who.user+"'s line", err)
		return
	}
	if tone, ok := d.fs.find(executes(line.uuid, "playback")); ok {
		r.pbx("%s played %s", tone["Channel-Name"], tone["Application-Data"])
	}
	r.pbx("%s hung up: %s", hup["Channel-Name"], hup["Hangup-Cause"])
	if hup["Hangup-Cause"] != "CALL_REJECTED" {
		r.fail("hang-up cause %s, want CALL_REJECTED", hup["Hangup-Cause"])
	}
	if ev, ok := d.fs.find(executes(line.uuid, app)); ok {
		r.fail("%s ran %s(%s)", ev["Channel-Name"], app, ev["Application-Data"])
	}
}

// fsRefused: carol, whose scope is the support queue only, dials *2222001.
func (d *demo) fsRefused(ctx context.Context) *stepResult {
	r := &stepResult{
		Title: fmt.Sprintf("%s dials *222%s: the call is on %s, outside her scope", carol, agentExt, queue),
		Want:  "carol hears the refusal tone and is hung up (CALL_REJECTED), never eavesdrops; audit: deny monitor.listen (out_of_scope)",
	}
	since := time.Now()
	line, err := d.fsDial(ctx, carol, "*222"+agentExt)
	if err != nil {
		r.failErr("originate", err)
		return r
	}
	d.wantRejected(ctx, r, line, "eavesdrop")
	d.expectAudit(ctx, r, since, auditWant{User: carol.user, Action: "monitor.listen", Decision: "deny", Reason: "out_of_scope"})
	return r
}

// fsRecordStart: alice dials *2252001; FreeSWITCH records the agent's call.
func (d *demo) fsRecordStart(ctx context.Context, call fsCall) (enforce.Recording, *stepResult) {
	r := recordStartStep("FreeSWITCH records the agent's call (RECORD_START on the agent's phone)")
	since := time.Now()
	if _, err := d.fsDial(ctx, alice, "*225"+agentExt); err != nil {
		r.failErr("originate", err)
		return enforce.Recording{}, r
	}
	ev, err := d.fs.wait(ctx, d.opts.wait, "RECORD_START on the agent's phone", event("RECORD_START", call.agent))
	if err != nil {
		r.failErr("FreeSWITCH never started recording", err)
	} else {
		r.pbx("RECORD_START on %s: %s", ev["Channel-Name"], ev["Record-File-Path"])
	}
	d.expectAudit(ctx, r, since, auditWant{User: alice.user, Action: "recording.start", Decision: "allow"})
	rec, err := d.waitRecording(ctx, since)
	if err != nil {
		r.failErr("callwarden's recording metadata", err)
		return rec, r
	}
	r.pbx("recording %s (id %s, for *227%s) is %s", rec.Name, rec.ID, rec.ID, rec.State)
	// The recording must outlive the watchdog's reaction time: callwarden
	// let its own recording through.
	time.Sleep(time.Second)
	if stop, ok := d.fs.find(event("RECORD_STOP", call.agent)); ok {
		r.fail("the recording stopped at once: %s", stop["Record-File-Path"])
	}
	return rec, r
}

// fsRecordStop: alice dials *2292001; the recording ends.
func (d *demo) fsRecordStop(ctx context.Context, call fsCall, rec enforce.Recording) *stepResult {
	r := &stepResult{
		Title: fmt.Sprintf("alice dials *229%s: stop the recording", agentExt),
		Want:  "FreeSWITCH stops recording (RECORD_STOP on the agent's phone); audit: allow recording.stop",
	}
	if rec.ID == "" {
		r.fail("no recording to stop (previous step failed)")
		return r
	}
	since := time.Now()
	if _, err := d.fsDial(ctx, alice, "*229"+agentExt); err != nil {
		r.failErr("originate", err)
		return r
	}
	d.expectAudit(ctx, r, since, auditWant{User: alice.user, Action: "recording.stop", Decision: "allow"})
	ev, err := d.fs.wait(ctx, d.opts.wait, "RECORD_STOP on the agent's phone", event("RECORD_STOP", call.agent))
	if err != nil {
		r.failErr("FreeSWITCH never stopped recording", err)
		return r
	}
	r.pbx("RECORD_STOP on %s: %s", ev["Channel-Name"], ev["Record-File-Path"])
	return r
}

// fsPlayback: who dials *227<id>; tina's period includes today, tom's ended.
func (d *demo) fsPlayback(ctx context.Context, who actor, rec enforce.Recording, allowed bool) *stepResult {
	r := &stepResult{Title: fmt.Sprintf("%s dials *227%s: play the recording back", who, rec.ID)}
	if allowed {
		r.Want = who.user + "'s line plays the recording; audit: allow recording.playback"
	} else {
		r.Want = who.user + " hears the refusal tone and is hung up, never hears the recording; audit: deny recording.playback (outside_window)"
	}
	if rec.ID == "" {
		r.fail("no recording to play (previous step failed)")
		return r
	}
	since := time.Now()
	line, err := d.fsDial(ctx, who, "*227"+rec.ID)
	if err != nil {
		r.failErr("originate", err)
		return r
	}
	if !allowed {
		hup, err := d.fs.wait(ctx, d.opts.wait, "hang-up of "+who.user+"'s line", event("CHANNEL_HANGUP_COMPLETE", line.uuid))
		if err != nil {
			r.failErr(who.user+"'s line", err)
		} else {
			r.pbx("%s hung up: %s", hup["Channel-Name"], hup["Hangup-Cause"])
		}
		if ev, ok := d.fs.find(func(h map[string]string) bool {
			return executes(line.uuid, "playback")(h) && strings.Contains(h["Application-Data"], rec.Name)
		}); ok {
			r.fail("%s played the recording: %s", ev["Channel-Name"], ev["Application-Data"])
		}
		d.expectAudit(ctx, r, since, auditWant{User: who.user, Action: "recording.playback", Decision: "deny", Reason: "outside_window"})
		return r
	}
	ev, err := d.fs.wait(ctx, d.opts.wait, who.user+"'s line playing the recording", func(h map[string]string) bool {
		return executes(line.uuid, "playback")(h) && strings.Contains(h["Application-Data"], rec.Name)
	})
	if err != nil {
		r.failErr("the recording was never played", err)
	} else {
		r.pbx("%s runs playback(%s)", ev["Channel-Name"], ev["Application-Data"])
	}
	d.expectAudit(ctx, r, since, auditWant{User: who.user, Action: "recording.playback", Decision: "allow"})
	return r
}

// fsRogueEavesdrop: a dialplan extension runs eavesdrop on the agent's
// phone without asking callwarden (the lab's eavesdrop_<uuid>); the
// watchdog must hang the spy up.
func (d *demo) fsRogueEavesdrop(ctx context.Context, call fsCall) *stepResult {
	r := &stepResult{
		Title: fmt.Sprintf("a rogue dialplan extension runs eavesdrop on agent %s's phone without asking callwarden (eavesdrop_<uuid>)", agentExt),
		Want:  "callwarden's watchdog hangs the spy up within 200 ms; audit: deny from the watchdog",
	}
	since := time.Now()
	id := d.newID("rogue")
	d.track(id)
	go func() {
		// The originate may answer after the watchdog hung the spy up: only
		// the events say what happened.
		_, _ = d.fs.originate(context.WithoutCancel(ctx), id, "eavesdrop_"+call.agent, "park", "default")
	}()
	spy, err := d.fs.wait(ctx, d.opts.wait, "a rogue eavesdrop", func(h map[string]string) bool {
		return h["Event-Name"] == "CHANNEL_EXECUTE" && h["Application"] == "eavesdrop" && h["Application-Data"] == call.agent &&
			strings.HasPrefix(h["Channel-Name"], "loopback/eavesdrop_")
	})
	if err != nil {
		r.failErr("the rogue line never started eavesdrop", err)
		return r
	}
	r.pbx("%s runs eavesdrop(%s) from the dialplan", spy["Channel-Name"], call.agent)
	gone, err := d.fs.wait(ctx, d.opts.wait, "the spy's hang-up", event("CHANNEL_HANGUP_COMPLETE", spy["Unique-ID"]))
	if err != nil {
		r.fail("the rogue eavesdrop is still running after %s", d.opts.wait)
	} else {
		r.pbx("%s hung up (%s), %s after its eavesdrop started", gone["Channel-Name"], gone["Hangup-Cause"], eventGapFS(spy, gone))
	}
	d.expectAudit(ctx, r, since, auditWant{Source: "watchdog", Decision: "deny"})
	return r
}

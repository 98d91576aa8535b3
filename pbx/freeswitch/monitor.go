package freeswitch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/session"
)

// errNoCall is returned by findCall when the target has no live call.
var errNoCall = errors.New("freeswitch: the target has no live call")

// eavesdropCommands are the digits of the eavesdrop-command that put a
// running eavesdrop in each mode (FreeSWITCH's own DTMF digits, sent as a
// CUSTOM event so the supervisor's keypad never reaches eavesdrop): 0
// nobody hears the spy, 2 the spy goes into the target's write stream
// (what a phone's channel sends to the phone: the agent hears it), 3 both
// streams. A loopback leg is the other way round: see whisperCommand.
var eavesdropCommands = map[session.Mode]string{session.Listen: "0", session.Whisper: "2", session.Barge: "3"}

// whisperIntoRead is the eavesdrop-command that mixes the spy into the
// target's read stream.
const whisperIntoRead = "1"

// whisperCommand is the eavesdrop-command of a whisper to the agent on
// channel name. A phone's channel (sofia/...) writes to the agent's phone:
// 2. A loopback leg is the application side of a call, its partner the
// far end: the agent's voice (the lab's agent_<ext>, a playback) runs on
// the leg itself and hears what the leg reads, while what the leg writes
// goes to the customer. Measured by audio on 1.10.12: 2 on the lab agent's
// loopback leg made the customer hear the supervisor and not the agent; 1
// makes the agent hear it, not the customer.
func whisperCommand(name string) string {
	if strings.HasPrefix(name, "loopback/") {
		return whisperIntoRead
	}
	return eavesdropCommands[session.Whisper]
}

// liveCall is the target's channel found by findCall.
type liveCall struct {
	uuid   string
	name   string // the channel's name (show channels)
	queue  string // callwarden_queue, else cc_queue
	caller string // the channel's caller id number (audit only)
}

// serveMonitor serves callwarden_action=monitor: decide, then run the
// session core's monitor life cycle with eavesdrop on the supervisor's
// channel (this connection's). A refusal plays the refusal tone and hangs
// up. The connection stays open as long as the eavesdrop runs; the
// eavesdrop ending (the target hung up) hangs the supervisor up. Mode
// digits switch the mode meanwhile, each decided again (followMonitor).
func (a *Adapter) serveMonitor(ctx context.Context, oc *outConn, ch channel, rq request, e session.Entry, log *zap.Logger) {
	started := a.o.Now()
	entry := e // the request's entry, before the first decision filled it
	call, e, o := a.decideMonitor(ctx, oc, ch, rq.target, rq.mode, e)
	tgt := call.uuid
	if o.Allow {
		e.Session = session.NewSessionID() // the decision record names the session too
	}
	o = a.audited(ctx, verbMonitor, e, o, log)
	if !o.Allow {
		a.refuse(ctx, oc, ch, o, log)
		return
	}
	log = log.With(zap.String("user", e.User), zap.String("target", e.Target), zap.String("target_channel", tgt))
	pbx := &eslEavesdropper{oc: oc, api: a.api, timeout: a.o.Timeout, allow: a.allow, whisper: whisperCommand(call.name)}
	s, err := session.StartMonitor(ctx, pbx, a.audit, session.MonitorSpec{
		Supervisor: ch.uuid, Target: tgt, Mode: rq.mode,
		Entry: e, Allowed: o, RefusalSound: a.o.RefusalTone, Registry: a.o.Sessions,
	})
	if err != nil {
		// Audited as failed by the core; the supervisor is hung up,
		// never left parked on the socket.
		log.Error("monitor setup failed; hanging up", zap.Error(err))
		_ = a.setOutcome(ctx, oc, ch, session.Refused(session.ReasonPBXError), log)
		_ = pbx.Hangup(ctx, ch.uuid)
		return
	}
	_ = a.setOutcome(ctx, oc, ch, o, log)
	oc.unlimit()
	log.Info("monitoring", zap.String("mode", rq.mode.String()), zap.Duration("intercept", a.o.Now().Sub(started)))

	redecide := func(ctx context.Context, m session.Mode) (session.Entry, session.Outcome) {
		return a.redecideMonitor(ctx, oc, ch, rq.target, tgt, m, entry)
	}
	// An end asked through the registry (an administrator), or the
	// grant's max_duration passing, cancels the reading of the
	// supervisor's events.
	fctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		select {
		case <-s.Done():
			stop()
		case <-s.Expired():
			stop()
		case <-fctx.Done():
		}
	}()
	cause := a.followMonitor(fctx, oc, s, redecide, log)
	switch {
	case expired(s):
		log.Info("monitoring ended: max_duration reached")
		cause = enforce.CauseMaxDuration
	case s.EndCause() != "":
		// An administrator's end, or a re-decision that denied (a
		// downgrade too: this adapter ends rather than downgrades).
		cause = s.EndCause()
		log.Info("monitoring ended", zap.String("cause", cause), zap.String("by", s.EndedBy()))
	case ctx.Err() != nil:
		cause = enforce.CauseShutdown
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.o.Timeout)
	defer cancel()
	if err := s.End(cctx, cause); err != nil {
		log.Debug("end of monitoring", zap.Error(err))
	}
}

// expired reports whether s's max_duration has passed.
func expired(s *session.Monitor) bool {
	select {
	case <-s.Expired():
		return true
	default:
		return false
	}
}

// followMonitor reads the supervisor channel's events until the session
// ends; it returns the cause of the end (a cancelled ctx reads as the
// daemon's shutdown; the caller tells an administrator's end apart). Each
// mode digit the supervisor presses (the event application its digit
// bindings run, see bindModeDigits) is a switch of s, decided again.
func (a *Adapter) followMonitor(ctx context.Context, oc *outConn, s *session.Monitor, decide session.Decider, log *zap.Logger) (cause string) {
	for {
		f, err := oc.next(ctx, time.Time{})
		if ctx.Err() != nil {
			return enforce.CauseShutdown
		}
		if errors.Is(err, ErrHungUp) {
			log.Info("supervisor hung up; monitoring ended")
			return enforce.CauseRequesterHangup
		}
		if err != nil {
			log.Warn("outbound connection lost; monitoring ended", zap.Error(err))
			return enforce.CauseRequesterHangup
		}
		ev, perr := parsePlainEvent(f.body)
		if perr != nil {
			oc.skipped++
			continue
		}
		switch ev.get("Event-Name") {
		case "CHANNEL_APPLICATION":
			if m, ok := session.ModeForDigit(ev.get(hdrDigit)); ok && m != s.Mode() {
				a.switchMode(ctx, s, m, decide, log)
			}
		case "CHANNEL_EXECUTE_COMPLETE":
			if ev.get("Application") == "eavesdrop" {
				log.Info("eavesdrop ended (the target's call ended); monitoring ended")
				return enforce.CauseTargetHangup
			}
		case "CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE":
			log.Info("supervisor hung up; monitoring ended")
			return enforce.CauseRequesterHangup
		}
	}
}

// switchMode switches s to m if decide allows it now (the core audits the
// decision and its result, and plays the refusal on a deny) and counts
// the decision.
func (a *Adapter) switchMode(ctx context.Context, s *session.Monitor, m session.Mode, decide session.Decider, log *zap.Logger) {
	from := s.Mode()
	r := s.Switch(ctx, m, decide)
	a.m.decisions.WithLabelValues(verbMonitor.String(), session.ActionName(m.Action()), r.Outcome.Verdict()).Inc()
	switch {
	case !r.Outcome.Allow:
		log.Info("mode switch refused", zap.String("from", from.String()), zap.String("to", m.String()),
			zap.String("reason", r.Outcome.Reason), zap.NamedError("refusal", r.Err))
	case r.Err != nil:
		log.Warn("mode switch failed; staying in the current mode", zap.String("mode", s.Mode().String()), zap.Error(r.Err))
	default:
		log.Info("mode switched", zap.String("from", from.String()), zap.String("to", m.String()))
	}
}

// redecideMonitor decides mode m again for a running session on the
// target's call tgt: the requester and the target's call are resolved
// afresh (the policy, the agent's queue or the call may have changed). A
// target now found in another call than the one eavesdropped on is
// refused (target_not_in_call): the decision must be about the call the
// supervisor hears.
func (a *Adapter) redecideMonitor(ctx context.Context, oc *outConn, ch channel, target, tgt string, m session.Mode, e session.Entry) (session.Entry, session.Outcome) {
	e.Channels = slices.Clip(e.Channels) // decideMonitor appends: never into the request's array
	now, e, o := a.decideMonitor(ctx, oc, ch, target, m, e)
	if o.Allow && now.uuid != tgt {
		return e, session.Refused(session.ReasonNoCall)
	}
	return e, o
}

// decideMonitor resolves the requester, the target and the target's live
// call (its queue) and decides mode m; it never allows on an error.
func (a *Adapter) decideMonitor(ctx context.Context, oc *outConn, ch channel, target string, m session.Mode, e session.Entry) (liveCall, session.Entry, session.Outcome) {
	e.Action, e.Target = m.Action(), target
	snap := a.o.Snapshot()
	if snap == nil {
		return liveCall{}, e, session.Decided(enforce.Decide(nil, &enforce.Request{}, a.o.Now()))
	}
	user := resolveRequester(snap, ch)
	e.User = user
	agent, ok := snap.ResolveIdentity(target)
	if !ok {
		return liveCall{}, e, session.Refused(session.ReasonUnknownTarget)
	}
	e.Target = agent
	c, err := a.findCall(ctx, oc, snap, agent, ch.uuid)
	if err != nil {
		if errors.Is(err, errNoCall) {
			return liveCall{}, e, session.Refused(session.ReasonNoCall)
		}
		a.log.Warn("cannot find the target's call", zap.String("target", agent), zap.Error(err))
		return liveCall{}, e, session.Refused(session.ReasonPBXError)
	}
	e.Queue, e.Caller = c.queue, c.caller
	e.Channels = append(e.Channels, c.uuid)
	d := enforce.Decide(snap, &enforce.Request{User: user, Action: m.Action(), Queue: c.queue, Agent: agent}, a.o.Now())
	return c, e, session.Decided(d)
}

// varAgent names, on an agent's leg, the agent whose phone it is; only
// the dialplan sets it (the lab's agent extensions do).
const varAgent = "callwarden_agent"

// findCall finds agent's live call: the answered channels (callstate
// ACTIVE) but self whose name (exactly, or its prefix before the last '-')
// or presence id (user@domain) is one of agent's identities, as a
// requester's channel name is matched. A loopback call names both its legs
// after the extension dialled, so among them the one whose
// callwarden_agent variable names the agent wins, else the oldest. The
// queue is callwarden_queue set by the dialplan, else mod_callcenter's
// cc_queue.
//
// The channel model answers when it is synced and knows a channel of the
// agent that FreeSWITCH confirms is still there (uuid_exists; a channel
// only listed so far: a uuid_dump of it). Otherwise FreeSWITCH is asked, as
// before the model: listCall. Neither a miss nor a hit is believed
// blindly: the model lags the outbound socket by the inbound events'
// reordering window, so a call answered a moment ago may not be in it yet
// and one hung up a moment ago may still be (an agent's next call then
// found in its place). Nor is the model while the agent's own leg is still
// being answered (channelModel.lookup).
func (a *Adapter) findCall(ctx context.Context, oc *outConn, snap *enforce.Snapshot, agent, self string) (liveCall, error) {
	result := "unsynced"
	if a.in.live() {
		cands, synced := a.model.lookup(snap, agent, self)
		switch {
		case !synced:
		case len(cands) == 0:
			result = "miss"
		default:
			c, err := a.pick(ctx, oc, snap, agent, cands)
			if !errors.Is(err, errNoCall) {
				if err == nil {
					a.m.lookups.WithLabelValues("hit").Inc()
				}
				return c, err
			}
			result = "stale" // every channel it knew had ended, or was a ghost of a listing
		}
	}
	a.m.lookups.WithLabelValues(result).Inc()
	return a.listCall(ctx, oc, snap, agent, self)
}

// listCall asks FreeSWITCH for agent's live call (findCall's rules): `show
// channels`, whose rows FreeSWITCH writes about a second after a channel
// appears, then a uuid_dump of each candidate.
func (a *Adapter) listCall(ctx context.Context, oc *outConn, snap *enforce.Snapshot, agent, self string) (liveCall, error) {
	out, err := apiCall(ctx, oc, "show channels as json")
	if err != nil {
		return liveCall{}, err
	}
	rows, err := parseListing(out)
	if err != nil {
		return liveCall{}, err
	}
	var cands []candidate
	for _, r := range rows {
		if r.UUID == self || r.CallState != "ACTIVE" || !matches(snap, agent, r.Name, r.PresenceID) {
			continue
		}
		cands = append(cands, candidate{liveCall: liveCall{uuid: r.UUID, name: r.Name}, partial: true})
	}
	return a.pick(ctx, oc, snap, agent, cands)
}

// pick chooses among agent's candidates (preferred's order), skipping
// those FreeSWITCH says are gone. A candidate whose variables are not
// known is looked at with uuid_dump first (and the model completed with
// what it says); one known from the model's events is confirmed with
// uuid_exists only when its turn comes (the model may not have had its
// hangup yet).
func (a *Adapter) pick(ctx context.Context, oc *outConn, snap *enforce.Snapshot, agent string, cands []candidate) (liveCall, error) {
	known := make([]candidate, 0, len(cands))
	for _, c := range cands {
		if !validToken(c.uuid) || len(c.uuid) > maxArg {
			continue
		}
		if c.partial {
			dump, err := apiCall(ctx, oc, "uuid_dump "+c.uuid)
			if errors.Is(err, ErrCommandFailed) {
				a.model.forget(c.uuid) // gone since it was listed
				continue
			}
			if err != nil {
				return liveCall{}, err
			}
			h, err := parsePlainEvent([]byte(strings.TrimRight(dump, "\n") + "\n\n"))
			if err != nil {
				continue
			}
			c.queue = queueOf(func(name string) string { return h.get("variable_" + name) })
			c.caller, c.agent = h.get("Caller-Caller-ID-Number"), h.get("variable_"+varAgent)
			a.model.fill(c)
		}
		known = append(known, c)
	}
	for _, c := range preferred(snap, agent, known) {
		switch live, err := a.exists(ctx, oc, c); {
		case err != nil:
			return liveCall{}, err
		case live:
			return c.liveCall, nil
		}
	}
	return liveCall{}, errNoCall
}

// preferred orders agent's candidates (oldest first) as the agent's call
// is chosen among them: those whose callwarden_agent names the agent
// first (a loopback call names both its legs after the extension
// dialled), then the others.
func preferred(snap *enforce.Snapshot, agent string, cands []candidate) []candidate {
	out := make([]candidate, 0, len(cands))
	var others []candidate
	for _, c := range cands {
		if u, ok := snap.ResolveIdentity(c.agent); ok && u == agent {
			out = append(out, c)
		} else {
			others = append(others, c)
		}
	}
	return append(out, others...)
}

// exists reports whether candidate c's channel is still there: one just
// dumped is; one known from the model is asked about (uuid_exists).
func (a *Adapter) exists(ctx context.Context, oc *outConn, c candidate) (bool, error) {
	if c.partial {
		return true, nil
	}
	out, err := apiCall(ctx, oc, "uuid_exists "+c.uuid)
	if err != nil {
		return false, err
	}
	live := strings.TrimSpace(out) == "true"
	if !live {
		a.log.Debug("the channel model's call has ended: passed over", zap.String("channel", c.uuid), zap.String("name", c.name))
	}
	return live, nil
}

// apiCall runs an api command on the outbound connection; a -ERR answer is
// ErrCommandFailed.
func apiCall(ctx context.Context, oc *outConn, cmd string) (string, error) {
	lines := []string{"api " + cmd}
	f, err := oc.command(ctx, lines...)
	if err != nil {
		return "", err
	}
	return string(f.body), replyErr(lines, f)
}

// executeLines is the command that queues application app(arg) on channel
// uuid (sendmsg execute; in async mode FreeSWITCH answers at once).
// event-lock makes each run after the one before has ended: without it an
// application queued while another runs is run inside it (a hangup queued
// after the refusal tone cut the tone at once).
func executeLines(uuid, app, arg string) []string {
	lines := []string{"sendmsg " + uuid, "call-command: execute", "execute-app-name: " + app, "event-lock: true"}
	if arg != "" {
		lines = append(lines, "execute-app-arg: "+arg)
	}
	return lines
}

// execute queues application app(arg) on channel uuid (executeLines).
func execute(ctx context.Context, oc *outConn, uuid, app, arg string) error {
	return sendAll(ctx, oc, executeLines(uuid, app, arg))
}

// sendAll sends cmds in one write (outConn.pipeline) and fails on the
// first that FreeSWITCH refused.
func sendAll(ctx context.Context, oc *outConn, cmds ...[]string) error {
	fs, err := oc.pipeline(ctx, cmds...)
	if err != nil {
		return err
	}
	for i, f := range fs {
		if err := replyErr(cmds[i], f); err != nil {
			return err
		}
	}
	return nil
}

// refuse tells a refused requester: the decision in channel variables,
// the refusal tone, then a hang-up (CALL_REJECTED); see conclude.
func (a *Adapter) refuse(ctx context.Context, oc *outConn, ch channel, o session.Outcome, log *zap.Logger) {
	a.conclude(ctx, oc, ch, o, a.o.RefusalTone, "CALL_REJECTED", log)
}

// hdrDigit is the header of the CHANNEL_APPLICATION event a mode digit
// fires (see bindModeDigits); its value is the digit.
const hdrDigit = "callwarden_digit"

// digitRealm is the digit machine realm of callwarden's bindings.
const digitRealm = "callwarden"

// bindModeDigits are the commands that bind each mode digit (session.ModeForDigit: 4, 5, 6) on
// the supervisor's channel to the event application, run inline
// (exec[i]) with callwarden_digit=<digit>: its CHANNEL_APPLICATION event
// is how callwarden hears the digit. eavesdrop never dequeues DTMF with
// eavesdrop_enable_dtmf=false, so no DTMF event reaches ESL; but a phone's
// digit (RTP) goes through switch_channel_queue_dtmf, which feeds the
// channel's digit machine first, whatever application runs. Digits marked
// skip-process do not (uuid_recv_dtmf without '~', uuid_send_dtmf). A
// digit the machine takes is not queued at all
// (FreeSWITCH's own 0-3 included: no binding is longer than one digit, so
// each is matched, or rejected, at once and no digit timeout applies).
// The event application, run inline, becomes the channel's
// current_application although eavesdrop still runs.
func bindModeDigits(supervisor string) [][]string {
	var cmds [][]string
	for d := '0'; d <= '9'; d++ {
		if _, ok := session.ModeForDigit(string(d)); !ok {
			continue
		}
		// bind_digit_action splits its argument on commas: realm, digits,
		// action, the action's argument.
		arg := fmt.Sprintf("%s,%c,exec[i]:event,%s=%c", digitRealm, d, hdrDigit, d)
		cmds = append(cmds, executeLines(supervisor, "bind_digit_action", arg))
	}
	return cmds
}

// eslEavesdropper is session.Eavesdropper on the supervisor's outbound
// connection.
type eslEavesdropper struct {
	oc *outConn
	// api runs an api command on the inbound connection: a mute comes from
	// another goroutine than the one reading oc (the recording's pause).
	api     func(ctx context.Context, cmd string, args ...string) (string, error)
	timeout time.Duration
	// allow registers, just before the eavesdrop starts, the allowance that
	// lets it past callwarden's own watchdog (which stops every eavesdrop
	// no decision allowed).
	allow func(channel string, action enforce.Action)
	// whisper is the target's whisper eavesdrop-command (whisperCommand).
	whisper string
}

// Eavesdrop mutes the supervisor if muted, registers the allowance, then
// sends in one write: the subscription to the supervisor channel's
// events, FreeSWITCH's own DTMF switches off (and any whisper a variable
// could carry), callwarden's mode digits bound (bindModeDigits), answer
// and eavesdrop. One write because the channel thread picks queued
// applications up at its own pace (the lab measured about 10 ms a
// separate write cost, beyond the round trip), and nothing is lost by it:
// FreeSWITCH runs an outbound connection's commands in order, so the
// variables are set before eavesdrop is even read, and event-lock runs the
// queued applications one after the other. If any of them is refused,
// the eavesdrop is broken off and the error returned (the caller hangs
// the supervisor up). It waits for the eavesdrop to run and then sets
// mode m.
func (p *eslEavesdropper) Eavesdrop(ctx context.Context, supervisor, target string, m session.Mode, muted bool) (session.Tap, error) {
	oc := p.oc
	t := &eslTap{oc: oc, api: p.api, sup: supervisor, mode: session.Listen, whisper: p.whisper}
	if muted {
		if err := t.Mute(ctx, true); err != nil {
			return nil, err
		}
	}
	setup := append([][]string{
		{"filter Unique-ID " + supervisor},
		{"event plain CHANNEL_EXECUTE CHANNEL_EXECUTE_COMPLETE CHANNEL_HANGUP CHANNEL_APPLICATION"},
		{"api uuid_setvar_multi " + supervisor +
			" eavesdrop_enable_dtmf=false;eavesdrop_whisper_aleg=false;eavesdrop_whisper_bleg=false;eavesdrop_bridge_aleg=false;eavesdrop_bridge_bleg=false"},
	}, bindModeDigits(supervisor)...)
	fail := func(err error) (session.Tap, error) {
		if cerr := t.Close(ctx); cerr != nil && p.api != nil {
			// The outbound stream may be out of step (a reply that timed
			// out) while the eavesdrop it queued runs: break it off
			// through the inbound connection instead.
			bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.timeout)
			defer cancel()
			_, _ = p.api(bctx, "uuid_break", supervisor, "all")
		}
		return nil, err
	}
	if p.allow != nil {
		p.allow(supervisor, m.Action())
	}
	if err := sendAll(ctx, oc, append(setup, executeLines(supervisor, "answer", ""), executeLines(supervisor, "eavesdrop", target))...); err != nil {
		return fail(fmt.Errorf("eavesdrop set-up: %w", err))
	}
	deadline := time.Now().Add(p.timeout)
	for {
		f, err := oc.next(ctx, deadline)
		if err != nil {
			return fail(fmt.Errorf("waiting for eavesdrop to run: %w", err))
		}
		ev, err := parsePlainEvent(f.body)
		if err != nil || ev.get("Application") != "eavesdrop" {
			continue
		}
		if ev.get("Event-Name") == "CHANNEL_EXECUTE_COMPLETE" {
			return nil, fmt.Errorf("eavesdrop on %s ended at once (%s)", target, ev.get("Application-Response"))
		}
		if ev.get("Event-Name") == "CHANNEL_EXECUTE" {
			break
		}
	}
	if m != session.Listen {
		if err := t.SetMode(ctx, m); err != nil {
			return fail(err)
		}
	}
	return t, nil
}

// Play mixes media into what the supervisor hears for up to 3 s
// (uuid_displace: a queued playback would wait for eavesdrop to end).
func (p *eslEavesdropper) Play(ctx context.Context, channel, media string) error {
	_, err := apiCall(ctx, p.oc, "uuid_displace "+channel+" start "+media+" 3 mux")
	return err
}

// Hangup hangs channel up; one already gone is not an error.
func (p *eslEavesdropper) Hangup(ctx context.Context, channel string) error {
	_, err := apiCall(ctx, p.oc, "uuid_kill "+channel)
	if err != nil && (errors.Is(err, ErrHungUp) || strings.Contains(err.Error(), "No such channel")) {
		return nil
	}
	return err
}

// eslTap is one running eavesdrop (session.Tap).
type eslTap struct {
	oc      *outConn
	api     func(ctx context.Context, cmd string, args ...string) (string, error)
	sup     string
	mode    session.Mode
	whisper string // the target's whisper eavesdrop-command (whisperCommand)
}

// SetMode sends the mode's eavesdrop-command to the supervisor's session
// (sendevent CUSTOM with its unique-id); FreeSWITCH queues it to the
// eavesdrop, which applies it at its next frame.
func (t *eslTap) SetMode(ctx context.Context, m session.Mode) error {
	d, ok := eavesdropCommands[m]
	if m == session.Whisper && t.whisper != "" {
		d = t.whisper
	}
	if !ok {
		return fmt.Errorf("freeswitch: no eavesdrop command for mode %s", m)
	}
	f, err := t.oc.command(ctx, "sendevent CUSTOM", "unique-id: "+t.sup, "eavesdrop-command: "+d)
	if err == nil && !f.ok() {
		err = fmt.Errorf("%w: sendevent eavesdrop-command %s: %s", ErrCommandFailed, d, f.reply())
	}
	if err != nil {
		return err
	}
	t.mode = m
	return nil
}

// Mute silences what is written to the supervisor's channel, where
// eavesdrop writes the call's audio in every mode (uuid_audio: a media bug
// replacing each frame written to the supervisor with silence); unmuting
// removes the bug. What the supervisor says still goes where its mode
// sends it: the bug leaves the channel's read stream alone.
func (t *eslTap) Mute(ctx context.Context, on bool) error {
	args := []string{t.sup, "stop"}
	if on {
		args = []string{t.sup, "start", "write", "mute", "1"}
	}
	if _, err := t.api(ctx, "uuid_audio", args...); err != nil {
		return fmt.Errorf("uuid_audio %s: %w", args[1], err)
	}
	return nil
}

// Close breaks the eavesdrop off (uuid_break); a channel already gone is
// not an error.
func (t *eslTap) Close(ctx context.Context) error {
	_, err := apiCall(ctx, t.oc, "uuid_break "+t.sup+" all")
	if err != nil && (errors.Is(err, ErrHungUp) || strings.Contains(err.Error(), "No such channel")) {
		return nil
	}
	return err
}

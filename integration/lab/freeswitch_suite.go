package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// freeswitchOnce starts the suite's shared FreeSWITCH on first use, so packages and
// runs that test only Asterisk never pay for it.
type freeswitchOnce struct {
	once sync.Once
	err  error

	mu sync.Mutex // guards fs against the interrupt handler's read
	fs *FreeSWITCH
}

// FreeSWITCH returns the test's handle on the package's FreeSWITCH, started on first
// use (about 5 s) and removed by Main. Channels the test creates through the handle
// are killed when the test ends. It skips the test when Docker is unavailable and the
// suite is not required, and fails it when FreeSWITCH cannot start (a missing image
// always fails: run `make lab`).
func (s *Suite) FreeSWITCH(tb testing.TB) *TestFreeSWITCH {
	tb.Helper()
	s.mustRun(tb)
	s.fs.once.Do(func() {
		started := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
		defer cancel()
		fs, err := StartFreeSWITCH(ctx, FreeSWITCHOptions{})
		s.fs.mu.Lock()
		s.fs.fs, s.fs.err = fs, err
		s.fs.mu.Unlock()
		if err == nil {
			tb.Logf("lab: FreeSWITCH up in %s: ESL %s, host seen from it as %s",
				time.Since(started).Round(time.Millisecond), fs.ESLAddr(), fs.HostIP)
		}
	})
	if s.fs.err != nil {
		tb.Fatalf("integration: cannot start FreeSWITCH: %v", s.fs.err)
	}
	s.fs.mu.Lock()
	fs := s.fs.fs
	s.fs.mu.Unlock()
	return s.handle(tb, fs)
}

// OwnFreeSWITCH starts a FreeSWITCH of the test's own with opts (e.g. another
// configuration, such as deploy/freeswitch's files over the lab's), removed when the
// test ends; its channels are killed first. It fails the test when FreeSWITCH cannot
// start.
func (s *Suite) OwnFreeSWITCH(tb testing.TB, opts FreeSWITCHOptions) *TestFreeSWITCH {
	tb.Helper()
	s.mustRun(tb)
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	fs, err := StartFreeSWITCH(ctx, opts)
	if err != nil {
		tb.Fatalf("integration: cannot start a FreeSWITCH of the test's own: %v", err)
	}
	tb.Cleanup(func() {
		if err := fs.Close(context.Background()); err != nil {
			tb.Errorf("integration: %v", err)
		}
	})
	return s.handle(tb, fs)
}

// handle is the test's handle on fs; the test's channels are killed when it ends
// (unless FreeSWITCH's ESL answers inside its container only: then the test has
// made no channel through the handle).
func (s *Suite) handle(tb testing.TB, fs *FreeSWITCH) *TestFreeSWITCH {
	t := &TestFreeSWITCH{FreeSWITCH: fs, tb: tb, idBase: channelIDBase(tb)}
	if !fs.eslInside {
		tb.Cleanup(t.cleanup)
	}
	return t
}

// closeFreeSWITCH removes the shared FreeSWITCH if it was started.
func (s *Suite) closeFreeSWITCH(ctx context.Context) error {
	s.fs.mu.Lock()
	fs := s.fs.fs
	s.fs.mu.Unlock()
	if fs == nil {
		return nil
	}
	return fs.Close(ctx)
}

// TestFreeSWITCH is one test's handle on the shared FreeSWITCH.
type TestFreeSWITCH struct {
	*FreeSWITCH

	tb     testing.TB
	idBase string
	mu     sync.Mutex
	seq    int
	uuids  []string
}

// NewUUID returns a channel uuid unique to the test (FreeSWITCH accepts any string as
// origination_uuid), e.g. t-TestX-1a2b3c-customer-1.
func (t *TestFreeSWITCH) NewUUID(kind string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.seq++
	return fmt.Sprintf("%s-%s-%d", t.idBase, kind, t.seq)
}

// Track makes the test kill uuid when it ends.
func (t *TestFreeSWITCH) Track(uuids ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.uuids = append(t.uuids, uuids...)
}

// ErrHungUp is returned by Originate when the A leg was already gone when the harness
// looked for its partner (e.g. a feature code whose socket could not connect).
var ErrHungUp = errors.New("call already hung up")

// Call is a loopback pair: A is the originated leg (its uuid chosen by the harness),
// B the leg that ran the extension dialled; each is the other's other_loopback_leg_uuid.
type Call struct {
	A, B string
}

// Originate runs `originate {vars}loopback/<bExten>/default <aExten> XML <aContext>`
// with origination_uuid set, waits until it is answered and returns both legs, both
// killed when the test ends. vars are "name=value" (no commas, no quotes needed).
//
// FreeSWITCH sometimes gets the originated leg wrong, with nothing of
// callwarden's involved yet: a few lab calls in a thousand (on 2 loaded cores),
// the leg's own thread runs its routing only once originate has succeeded,
// looks its dialplan up with the loopback's destination (bExten) while
// originate's transfer to aExten runs, and then runs bExten on it (its debug
// log: "Processing ...->bExten in context default", then "Transfer ... to
// XML[aExten@aContext]", then bExten's applications): a supervisor's leg
// playing its own handset's tone, never reaching `socket` (the red CI runs of
// stops 21 and 22). Rarer, it leaves the leg before its dialplan. The call is
// the harness's, not the subject of any test: Originate ends it, says so with
// FreeSWITCH's debug log of it, and places it again, up to originateTries
// times.
func (t *TestFreeSWITCH) Originate(ctx context.Context, kind, bExten, aExten, aContext string, vars ...string) (Call, error) {
	for try := 1; ; try++ {
		call, err := t.originate(ctx, kind, bExten, aExten, aContext, vars...)
		if err != nil {
			return call, err
		}
		wrong, err := t.misrouted(ctx, call, bExten)
		if err != nil || wrong == "" {
			return call, err
		}
		if try == originateTries {
			return call, fmt.Errorf("originate %s XML %s: FreeSWITCH left the leg %s %s, %d times in a row", aExten, aContext, call.A, wrong, try)
		}
		t.tb.Logf("lab: FreeSWITCH left %s (%s in context %s) %s; placing the call again. FreeSWITCH's debug log of that leg:\n%s",
			call.A, aExten, aContext, wrong, t.debugLogOf(ctx, []string{call.A}, 60))
		for _, leg := range []string{call.A, call.B} {
			_ = t.Kill(ctx, leg) // the next try fails if FreeSWITCH is really gone
		}
	}
}

// originateTries bounds the calls Originate places for one.
const originateTries = 3

// misrouted watches the originated leg call.A until FreeSWITCH has routed it
// (its state past the beforeDialplan ones) and it has settled, and says how it
// went wrong, "" when it did not (or when it is gone: the caller finds out):
//   - still before its dialplan after routeLimit;
//   - running bExten, the loopback's own extension (the other leg's), instead of
//     the one originate sent it to. That shows either as the leg's destination
//     still being bExten, or, when originate's transfer changed the destination
//     but the leg had already looked its dialplan up (FreeSWITCH then runs the
//     old extension), as the leg settling on the very application B runs (the
//     same tone: no lab extension an A leg is sent to plays its partner's).
//
// One uuid_dump of the leg each 20 ms; a leg still settling after settleLimit
// is taken as routed right.
func (t *TestFreeSWITCH) misrouted(ctx context.Context, call Call, bExten string) (string, error) {
	start := time.Now()
	var routed time.Time // when the leg was first seen past its routing
	for {
		d, err := t.Dump(ctx, call.A)
		switch {
		case noSuchChannel(err):
			return "", nil
		case err != nil:
			return "", fmt.Errorf("the state of %s: %w", call.A, err)
		}
		state, app, data := d["Channel-State"], d["variable_current_application"], d["variable_current_application_data"]
		switch {
		case beforeDialplan[state]:
			if time.Since(start) > routeLimit {
				return fmt.Sprintf("in %s for %s without running its dialplan", state, routeLimit), nil
			}
		case d["Caller-Destination-Number"] == bExten:
			return fmt.Sprintf("running the loopback's own extension %s (%s)", bExten, app), nil
		case !settling[app]:
			b, err := t.Dump(ctx, call.B)
			if err != nil || app != b["variable_current_application"] || data != b["variable_current_application_data"] {
				return "", nil // B gone (the caller finds out), or A does what it was sent to
			}
			return fmt.Sprintf("running %s(%s) as its partner does: the loopback's own extension %s", app, data, bExten), nil
		case routed.IsZero():
			routed = time.Now()
		case time.Since(routed) > settleLimit:
			return "", nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// settling are the applications a lab extension runs before the one it stays in
// (or none yet); settleLimit bounds the wait for a leg to leave them.
var settling = map[string]bool{"": true, "answer": true, "set": true, "unset": true, "hash": true, "transfer": true, "export": true}

const settleLimit = time.Second

// routeLimit bounds how long an answered, originated leg may stay in CS_ROUTING
// before FreeSWITCH runs its dialplan: milliseconds normally, even on a loaded CI
// machine; a leg still there after this never leaves it.
const routeLimit = 5 * time.Second

// beforeDialplan are the states of a leg FreeSWITCH has not handed to its dialplan
// yet. The stuck legs seen in the lab sat in CS_ROUTING or CS_CONSUME_MEDIA (where
// originate keeps the leg until it is answered) with no application running.
var beforeDialplan = map[string]bool{"CS_NEW": true, "CS_INIT": true, "CS_ROUTING": true, "CS_CONSUME_MEDIA": true}

// debugLog is FreeSWITCH's log at debug level (logfile.conf.xml's "default"
// profile), each line of a channel prefixed with its uuid.
const debugLog = "/usr/local/freeswitch/log/freeswitch.log"

// debugLogOf returns the last n lines of FreeSWITCH's debug log that name one
// of uuids, but its dialplan's regex-by-regex trace (a failed test's evidence:
// which extension each leg was routed to, and what it ran).
func (t *TestFreeSWITCH) debugLogOf(ctx context.Context, uuids []string, n int) string {
	b, err := t.ReadFile(ctx, debugLog)
	if err != nil {
		return err.Error()
	}
	var mine []string
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.Contains(line, " Dialplan: ") && slices.ContainsFunc(uuids, func(u string) bool { return strings.Contains(line, u) }) {
			mine = append(mine, line)
		}
	}
	return strings.Join(mine[max(0, len(mine)-n):], "\n")
}

// noSuchChannel reports whether err is FreeSWITCH saying the channel is gone.
func noSuchChannel(err error) bool {
	return errors.Is(err, ErrESL) && strings.Contains(err.Error(), "No such channel")
}

// originate is Originate without the check that the call was routed.
func (t *TestFreeSWITCH) originate(ctx context.Context, kind, bExten, aExten, aContext string, vars ...string) (Call, error) {
	call := Call{A: t.NewUUID(kind)}
	t.Track(call.A)
	all := append([]string{"origination_uuid=" + call.A}, vars...)
	for _, v := range all {
		if strings.ContainsAny(v, ",{}'\"\r\n ") {
			return call, fmt.Errorf("originate variable %q: comma, brace, quote, space or newline", v)
		}
	}
	cmd := fmt.Sprintf("originate {%s}loopback/%s/default %s XML %s", strings.Join(all, ","), bExten, aExten, aContext)
	out, err := t.API(ctx, cmd)
	if err != nil {
		return call, err
	}
	if !strings.HasPrefix(out, "+OK") {
		return call, fmt.Errorf("%s: %s", cmd, strings.TrimSpace(out))
	}
	b, err := t.Var(ctx, call.A, "other_loopback_leg_uuid")
	if noSuchChannel(err) {
		return call, fmt.Errorf("%s: %w", cmd, ErrHungUp)
	}
	if err != nil {
		return call, fmt.Errorf("%s: the B leg: %w", cmd, err)
	}
	call.B = b
	t.Track(b)
	return call, nil
}

// CustomerCall makes a customer (A, extension "customer", 1000 Hz, caller id
// customerNumber) call agent (B, e.g. "2001", 440 Hz): through queue when it is not
// empty (extension queue_<queue>_<agent>, which sets callwarden_queue on both legs,
// standing for mod_callcenter), else directly (agent_<agent>, no queue). The agent's
// leg carries callwarden_agent=<agent>. It returns when both legs are answered.
func (t *TestFreeSWITCH) CustomerCall(ctx context.Context, queue, agent, customerNumber string) (customer, agentLeg string, err error) {
	ext := "agent_" + agent
	if queue != "" {
		ext = "queue_" + queue + "_" + agent
	}
	call, err := t.Originate(ctx, "customer", ext, "customer", "default",
		"origination_caller_id_number="+customerNumber, "origination_caller_id_name=customer",
		"origination_callee_id_number="+customerNumber, "origination_callee_id_name=customer")
	return call.A, call.B, err
}

// SupervisorCall is SupervisorCallIn context "callwarden".
func (t *TestFreeSWITCH) SupervisorCall(ctx context.Context, supervisor, exten, socketAddr string) (Call, error) {
	return t.SupervisorCallIn(ctx, supervisor, exten, "callwarden", socketAddr)
}

// SupervisorCallIn makes supervisor (e.g. "1001") dial exten (e.g. "*2222001") in
// dialContext (e.g. "callwarden", or "default" where the phones' feature codes are
// sent on), as a phone would. A is the supervisor's channel running the
// feature code (caller id <supervisor>), B the supervisor's handset (answering,
// speaking 2000 Hz). socketAddr, when not empty, is the call's ${callwarden_socket}:
// where the feature code's `socket` connects (an OutboundListener's Addr); empty
// leaves the lab's global. The eavesdrop and DTMF work on the A leg (see the image
// README: a spy on a loopback B leg stops sending audio in whisper/barge).
func (t *TestFreeSWITCH) SupervisorCallIn(ctx context.Context, supervisor, exten, dialContext, socketAddr string) (Call, error) {
	// A transfer of an originated (outbound) leg swaps caller and callee ids, so the
	// callee id is set too for the feature code to see caller id <supervisor>.
	vars := []string{
		"origination_caller_id_number=" + supervisor, "origination_caller_id_name=supervisor" + supervisor,
		"origination_callee_id_number=" + supervisor, "origination_callee_id_name=supervisor" + supervisor,
	}
	if socketAddr != "" {
		vars = append(vars, "callwarden_socket="+socketAddr)
	}
	return t.Originate(ctx, "supervisor", "supervisor_"+supervisor, exten, dialContext, vars...)
}

// ListenOutbound listens where this FreeSWITCH reaches the test (HostIP); the
// listener is closed when the test ends.
func (t *TestFreeSWITCH) ListenOutbound() (*OutboundListener, error) {
	l, err := ListenOutbound(t.HostIP)
	if err != nil {
		return nil, err
	}
	t.tb.Cleanup(func() { l.Close() })
	return l, nil
}

// Var returns a channel variable (uuid_getvar); an unset one is ErrNotFound.
func (t *TestFreeSWITCH) Var(ctx context.Context, uuid, name string) (string, error) {
	out, err := t.API(ctx, "uuid_getvar "+uuid+" "+name)
	if err != nil {
		return "", err
	}
	out = strings.TrimSpace(out)
	if out == "_undef_" {
		return "", fmt.Errorf("%s on %s: %w", name, uuid, ErrNotFound)
	}
	return out, nil
}

// Dump returns `uuid_dump <uuid>` as headers (variables as variable_<name>).
func (t *TestFreeSWITCH) Dump(ctx context.Context, uuid string) (map[string]string, error) {
	out, err := t.API(ctx, "uuid_dump "+uuid)
	if err != nil {
		return nil, err
	}
	return ESLMessage{Body: out}.EventHeaders(), nil
}

// FSChannel is one row of `show channels as json` (the fields tests use).
type FSChannel struct {
	UUID        string `json:"uuid"`
	Name        string `json:"name"`
	Dest        string `json:"dest"`
	CIDNum      string `json:"cid_num"`
	Application string `json:"application"`
	AppData     string `json:"application_data"`
	CallState   string `json:"callstate"`
}

// Channels lists FreeSWITCH's channels.
func (t *TestFreeSWITCH) Channels(ctx context.Context) ([]FSChannel, error) {
	out, err := t.API(ctx, "show channels as json")
	if err != nil {
		return nil, err
	}
	var res struct {
		RowCount int         `json:"row_count"`
		Rows     []FSChannel `json:"rows"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		return nil, fmt.Errorf("show channels as json: %w: %.200q", err, out)
	}
	return res.Rows, nil
}

// Kill hangs up uuid (uuid_kill); a channel already gone is not an error.
func (t *TestFreeSWITCH) Kill(ctx context.Context, uuid string) error {
	_, err := t.API(ctx, "uuid_kill "+uuid)
	if noSuchChannel(err) {
		return nil
	}
	return err
}

// Exists reports whether uuid is a channel (uuid_exists).
func (t *TestFreeSWITCH) Exists(ctx context.Context, uuid string) (bool, error) {
	out, err := t.API(ctx, "uuid_exists "+uuid)
	return strings.TrimSpace(out) == "true", err
}

// WaitGone waits until uuid no longer exists.
func (t *TestFreeSWITCH) WaitGone(ctx context.Context, uuid string) error {
	ctx, cancel := withDeadline(ctx)
	defer cancel()
	for {
		ok, err := t.Exists(ctx, uuid)
		if err == nil && !ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("channel %s still up: %w (%v)", uuid, ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// HearsTone reports whether the channel uuid hears a tone of hz within window: it
// runs FreeSWITCH's tone_detect on what the channel reads (the audio sent to it), which
// sets a variable on a hit. A false answer takes the whole window. Any frequency of
// the lab's parties works: customers 1000, agents 440, supervisors 2000 Hz. Known
// limits in this image: it fires on the A (originated) leg of a loopback pair, never
// on a B leg; and one probe hears one pure tone, not a mix of two (an eavesdropper
// hearing both sides hears neither). For those, record what the leg hears
// (RECORD_READ_ONLY=true + uuid_record) and measure energy instead.
func (t *TestFreeSWITCH) HearsTone(ctx context.Context, uuid string, hz int, window time.Duration) (bool, error) {
	key := strings.ReplaceAll(t.NewUUID(fmt.Sprintf("tone%d", hz)), "-", "_")
	mark := "cwlab_heard_" + key
	// tone_detect <key> <freqs> <flags> <timeout> <app> <data> <hits>: r = read stream.
	arg := fmt.Sprintf("%s %d r +%d set %s=true 1", key, hz, window.Milliseconds(), mark)
	if err := t.SendMsg(ctx, uuid, "call-command: execute", "execute-app-name: tone_detect", "execute-app-arg: "+arg); err != nil {
		return false, fmt.Errorf("tone_detect %d Hz on %s: %w", hz, uuid, err)
	}
	deadline := time.Now().Add(window + 200*time.Millisecond)
	for {
		_, err := t.Var(ctx, uuid, mark)
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, ErrNotFound) {
			return false, err
		}
		if time.Now().After(deadline) {
			return false, nil
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// cleanup kills the test's channels and waits until they are gone.
func (t *TestFreeSWITCH) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	t.mu.Lock()
	uuids := t.uuids
	t.uuids = nil
	t.mu.Unlock()
	if t.tb.Failed() {
		t.tb.Logf("lab: FreeSWITCH's debug log of the test's channels:\n%s", t.debugLogOf(ctx, uuids, 400))
	}
	for _, u := range uuids {
		if err := t.Kill(ctx, u); err != nil {
			t.tb.Errorf("cleanup: uuid_kill %s: %v", u, err)
		}
	}
	for _, u := range uuids {
		if err := t.WaitGone(ctx, u); err != nil {
			t.tb.Errorf("cleanup: %v", err)
		}
	}
}

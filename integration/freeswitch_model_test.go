package integration

// The FreeSWITCH adapter's channel model against the real FreeSWITCH of the lab: the
// adapter runs in this process (its model is read through Adapter.Channels), its
// inbound ESL connection through a TCP relay the test can cut. With calls up, the
// relay is cut mid-load; while it is down calls come and go, and a monitor request
// is decided on what FreeSWITCH says then, never on the model's last word; once the
// adapter is back, its model converges to FreeSWITCH's own listing.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/callwarden/callwarden/config/configtest"
	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/integration/lab"
	"github.com/callwarden/callwarden/pbx/freeswitch"
	"github.com/callwarden/callwarden/pbx/session/sessiontest"
)

// eslRelay forwards TCP connections to FreeSWITCH's event socket until cut.
type eslRelay struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	down  bool // refuse new connections
	conns []net.Conn
	wg    sync.WaitGroup
}

func newESLRelay(t *testing.T, target string) *eslRelay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	mustOK(t, err)
	r := &eslRelay{ln: ln, target: target}
	r.wg.Add(1)
	go r.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		r.cut(true)
		r.wg.Wait()
	})
	return r
}

func (r *eslRelay) addr() string { return r.ln.Addr().String() }

func (r *eslRelay) accept() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.mu.Lock()
		if r.down {
			r.mu.Unlock()
			_ = c.Close()
			continue
		}
		up, err := net.DialTimeout("tcp", r.target, 5*time.Second)
		if err != nil {
			r.mu.Unlock()
			_ = c.Close()
			continue
		}
		r.conns = append(r.conns, c, up)
		r.wg.Add(2)
		r.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			defer r.wg.Done()
			_, _ = io.Copy(dst, src)
			_ = dst.Close()
			_ = src.Close()
		}
		go pipe(up, c)
		go pipe(c, up)
	}
}

// cut closes every relayed connection; down refuses new ones until cut(false).
func (r *eslRelay) cut(down bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.down = down
	for _, c := range r.conns {
		_ = c.Close()
	}
	r.conns = nil
}

// modelLookups is callwarden_freeswitch_model_lookups_total{result} in reg.
func modelLookups(t *testing.T, reg *prometheus.Registry, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	mustOK(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "callwarden_freeswitch_model_lookups_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no callwarden_freeswitch_model_lookups_total{result=%q}", result)
	return 0
}

// sameAsListing is nil when the model holds exactly the channels FreeSWITCH lists,
// each with the listing's name and call state.
func sameAsListing(ctx context.Context, fs *lab.TestFreeSWITCH, a *freeswitch.Adapter) error {
	model, synced := a.Channels()
	if !synced {
		return errors.New("the model is not synced")
	}
	listed, err := fs.Channels(ctx)
	if err != nil {
		return err
	}
	// Both sides again: FreeSWITCH writes its rows about a second late, so a channel
	// is compared only when the two listings around the model's agree on it.
	again, err := fs.Channels(ctx)
	if err != nil {
		return err
	}
	want := map[string]lab.FSChannel{}
	for _, c := range listed {
		if slices.ContainsFunc(again, func(o lab.FSChannel) bool { return o == c }) {
			want[c.UUID] = c
		}
	}
	if len(want) != len(listed) || len(again) != len(listed) {
		return fmt.Errorf("FreeSWITCH's listing still moves (%d, then %d channels)", len(listed), len(again))
	}
	var diffs []string
	for _, m := range model {
		l, ok := want[m.UUID]
		switch {
		case !ok:
			diffs = append(diffs, "model only: "+m.UUID+" "+m.Name+" "+m.CallState)
		case l.Name != m.Name || l.CallState != m.CallState:
			diffs = append(diffs, fmt.Sprintf("%s: model %s %s, listed %s %s", m.UUID, m.Name, m.CallState, l.Name, l.CallState))
		}
		delete(want, m.UUID)
	}
	for id, l := range want {
		diffs = append(diffs, "listed only: "+id+" "+l.Name+" "+l.CallState)
	}
	if len(diffs) > 0 {
		return fmt.Errorf("%d differences: %s", len(diffs), strings.Join(diffs, "; "))
	}
	return nil
}

// runFSAdapter builds the FreeSWITCH adapter of o and runs it in this process
// until the test ends.
func runFSAdapter(ctx context.Context, t *testing.T, o freeswitch.Options) *freeswitch.Adapter {
	t.Helper()
	a, err := freeswitch.New(o)
	mustOK(t, err)
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Run(rctx) }()
	t.Cleanup(func() { stop(); <-done })
	return a
}

// decisionOn waits for the decision record of the request made on channel sup.
func decisionOn(ctx context.Context, t *testing.T, log *sessiontest.AuditLog, sup string) enforce.AuditRecord {
	t.Helper()
	var rec enforce.AuditRecord
	waitFor(ctx, t, "the decision of the request on "+sup, func() error {
		for _, r := range log.All() {
			if len(r.Channels) > 0 && r.Channels[0] == sup && r.Outcome == "" {
				rec = r
				return nil
			}
		}
		return errors.New("not audited yet")
	})
	return rec
}

func TestFreeSWITCHChannelModelConvergesAfterAReconnect(t *testing.T) {
	_, fs, ctx := fsLab(t)
	relay := newESLRelay(t, fs.ESLAddr())
	snap := configtest.MustSnapshot(t, writeFile(t, "profiles.yaml", freeswitchMonitorProfiles))
	log := &sessiontest.AuditLog{}
	reg := prometheus.NewRegistry()
	outbound := freeHostPort(t, fs.HostIP)
	a := runFSAdapter(ctx, t, freeswitch.Options{ESLAddress: relay.addr(), ESLPassword: fs.ESLPassword,
		OutboundListen: outbound, PBX: "fslab", Snapshot: func() *enforce.Snapshot { return snap }, Auditor: log,
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, Registerer: reg})
	cw := &fsDaemon{outbound: outbound, fs: fs}

	// The load: customers calling agents nobody monitors, and agent 2001's call.
	var background []string
	for i := range 10 {
		background = append(background, mustAgentLeg(ctx, t, fs, fmt.Sprint(3000+i), fmt.Sprint(5551000+i)))
	}
	agentLeg := mustAgentLeg(ctx, t, fs, "2001", "5550100")
	waitFor(shortly(t, ctx), t, "the model tracking agent 2001's call", func() error {
		chs, synced := a.Channels()
		if synced && slices.ContainsFunc(chs, func(c freeswitch.ModelChannel) bool {
			return c.UUID == agentLeg && c.CallState == "ACTIVE"
		}) {
			return nil
		}
		return fmt.Errorf("%d channels, synced %v", len(chs), synced)
	})

	t.Run("a request while the inbound connection is down is decided on what FreeSWITCH says", func(t *testing.T) {
		relay.cut(true)
		waitFor(shortly(t, ctx), t, "the model unsynced", func() error {
			if _, synced := a.Channels(); synced {
				return errors.New("still synced")
			}
			return nil
		})
		// Meanwhile the agent's call ends, some calls end, others start: the model
		// hears none of it.
		mustOK(t, fs.Kill(ctx, agentLeg))
		for _, leg := range background[:3] {
			mustOK(t, fs.Kill(ctx, leg))
		}
		for i := range 3 {
			background = append(background, mustAgentLeg(ctx, t, fs, fmt.Sprint(3100+i), fmt.Sprint(5552000+i)))
		}
		mustOK(t, fs.WaitGone(ctx, agentLeg))
		unsynced := modelLookups(t, reg, "unsynced")
		sup := cw.supervisorCall(ctx, t, "1001", "*2222001")
		rec := decisionOn(shortly(t, ctx), t, log, sup)
		if rec.Decision != "deny" || rec.Reason != "target_not_in_call" {
			t.Errorf("decision %+v, want deny target_not_in_call: the agent's call is gone", rec)
		}
		if n := modelLookups(t, reg, "unsynced"); n != unsynced+1 {
			t.Errorf("%v unsynced lookups, want %v: the model must not answer while the connection is down", n, unsynced+1)
		}
		mustOK(t, fs.Kill(ctx, sup))
	})

	t.Run("after the reconnection the model equals FreeSWITCH's listing", func(t *testing.T) {
		relay.cut(false)
		waitFor(shortly(t, ctx), t, "the model equal to show channels", func() error {
			return sameAsListing(ctx, fs, a)
		})
	})

	t.Run("a call answered after the resync is found in the model", func(t *testing.T) {
		leg := mustAgentLeg(ctx, t, fs, "2001", "5550101")
		waitFor(shortly(t, ctx), t, "the model tracking the new call", func() error {
			chs, _ := a.Channels()
			if slices.ContainsFunc(chs, func(c freeswitch.ModelChannel) bool {
				return c.UUID == leg && c.CallState == "ACTIVE" && c.Variables
			}) {
				return nil
			}
			return errors.New("not yet")
		})
		hits := modelLookups(t, reg, "hit")
		sup := cw.supervisorCall(ctx, t, "1001", "*2222001")
		rec := decisionOn(shortly(t, ctx), t, log, sup)
		if rec.Decision != "allow" || len(rec.Channels) != 2 || rec.Channels[1] != leg {
			t.Errorf("decision %+v, want allow on %s", rec, leg)
		}
		if n := modelLookups(t, reg, "hit"); n != hits+1 {
			t.Errorf("%v model hits, want %v", n, hits+1)
		}
		wantEavesdropping(shortly(t, ctx), t, fs, sup, leg)
		mustOK(t, fs.Kill(ctx, sup))
	})
}

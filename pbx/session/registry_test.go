package session

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/callwarden/callwarden/cache/memory"
	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/session/sessiontest"
)

// newStore is the memory registry behind a switch that takes it down.
func newStore() *sessiontest.Sessions {
	return &sessiontest.Sessions{SessionStore: memory.NewSessions()}
}

// clock is a settable test clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// startRegistered starts a listen session of alice on carol's call,
// registered in a registry over store.
func startRegistered(t *testing.T, store enforce.SessionStore, instance string) (*fakePBX, *memAudit, *Registry, *Monitor, *clock, *prometheus.Registry) {
	t.Helper()
	c := &clock{t: t0}
	reg := prometheus.NewRegistry()
	r, err := NewRegistry(RegistryOptions{Store: store, Instance: instance, Now: c.now, Registerer: reg, PollInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	pbx, log := &fakePBX{}, &memAudit{}
	a := newAudit(log)
	a.Now = c.now
	m, err := StartMonitor(context.Background(), pbx, a, MonitorSpec{
		Supervisor: "sup", Target: "agent-ch", Mode: Listen, Registry: r,
		Entry: Entry{User: "alice", Action: enforce.MonitorListen, Target: "carol", Queue: "sales", Caller: "5550100",
			Requester: Requester{Channel: "sup", Name: "PJSIP/1001-01"}},
		Allowed: Decided(enforce.Decision{Allow: true, Profile: "supervisor", Grant: 2}), RefusalSound: "no",
	})
	if err != nil {
		t.Fatal(err)
	}
	return pbx, log, r, m, c, reg
}

func TestRegistryFollowsTheSessionsLife(t *testing.T) {
	ctx := context.Background()
	t.Run("a started session is listed with its requester, target, mode and decision", func(t *testing.T) {
		store := newStore()
		_, log, r, m, _, _ := startRegistered(t, store, "d1")
		live, err := r.List(ctx)
		if err != nil || len(live) != 1 {
			t.Fatalf("List = %+v, %v", live, err)
		}
		s := live[0]
		if s.ID != m.ID() || s.User != "alice" || s.Channel != "PJSIP/1001-01" || s.Target != "carol" || s.TargetChannel != "agent-ch" ||
			s.Mode != "listen" || s.Profile != "supervisor" || s.Grant != 2 || s.Instance != "d1" || s.PBX != "pbx1" || !s.StartedAt.Equal(t0) {
			t.Errorf("live session %+v", s)
		}
		if len(log.recs) != 1 || log.recs[0].Session != m.ID() || log.recs[0].Outcome != enforce.OutcomeEnforced {
			t.Errorf("records %+v, want the enforced result with the session id", log.recs)
		}
	})
	t.Run("a switch records the new mode and when", func(t *testing.T) {
		store := newStore()
		_, log, r, m, c, reg := startRegistered(t, store, "d1")
		c.t = t0.Add(time.Minute)
		m.Switch(ctx, Barge, func(context.Context, Mode) (Entry, Outcome) {
			return Entry{User: "alice", Action: enforce.MonitorBarge, Target: "carol"}, allow()
		})
		s, err := r.Get(ctx, m.ID())
		if err != nil || s.Mode != "barge" || len(s.Modes) != 2 || !s.Modes[1].At.Equal(c.t) || !s.UpdatedAt.Equal(c.t) {
			t.Fatalf("after switch %+v, %v", s, err)
		}
		for _, rec := range log.recs {
			if rec.Session != m.ID() {
				t.Errorf("record without the session id: %+v", rec)
			}
		}
		if g := sample(r.m.live.WithLabelValues("barge")); g != 1 {
			t.Errorf("live barge gauge %v, want 1", g)
		}
		if g := sample(r.m.live.WithLabelValues("listen")); g != 0 {
			t.Errorf("live listen gauge %v, want 0", g)
		}
		_ = reg
	})
	t.Run("an end removes the session and audits its cause and duration", func(t *testing.T) {
		store := newStore()
		pbx, log, r, m, c, _ := startRegistered(t, store, "d1")
		c.t = t0.Add(90 * time.Second)
		if err := m.End(ctx, enforce.CauseRequesterHangup); err != nil {
			t.Fatal(err)
		}
		if live, err := r.List(ctx); err != nil || len(live) != 0 {
			t.Errorf("List after end = %+v, %v", live, err)
		}
		end := log.recs[len(log.recs)-1]
		if end.Outcome != enforce.OutcomeEnded || end.Cause != enforce.CauseRequesterHangup || end.Duration != 90 ||
			end.Session != m.ID() || end.Action != "monitor.listen" || end.User != "alice" {
			t.Errorf("end record %+v", end)
		}
		if pbx.did("hangup sup") {
			t.Error("a requester who hung up was hung up again")
		}
		if n := sample(r.m.ends.WithLabelValues(enforce.CauseRequesterHangup)); n != 1 {
			t.Errorf("ends counter %v", n)
		}
		if n := sample(r.m.duration); n != 1 {
			t.Errorf("durations observed %v, want 1", n)
		}
	})
	t.Run("an administrator ends a session of this process at once", func(t *testing.T) {
		store := newStore()
		pbx, log, r, m, _, _ := startRegistered(t, store, "d1")
		if err := r.End(ctx, m.ID(), "root"); err != nil {
			t.Fatal(err)
		}
		select {
		case <-m.Done():
		case <-time.After(time.Second):
			t.Fatal("Done not closed")
		}
		if m.EndedBy() != "root" {
			t.Errorf("EndedBy %q", m.EndedBy())
		}
		_ = m.End(ctx, enforce.CauseAdministrator)
		end := log.recs[len(log.recs)-1]
		if end.Cause != enforce.CauseAdministrator || !strings.Contains(end.Detail, "ended by administrator root") || !pbx.did("hangup sup") {
			t.Errorf("end record %+v, calls %v", end, pbx.calls)
		}
	})
	t.Run("an end asked through the store reaches the owner's poll", func(t *testing.T) {
		store := newStore()
		_, _, owner, m, _, _ := startRegistered(t, store, "d1")
		other, err := NewRegistry(RegistryOptions{Store: store, Instance: "d2"})
		if err != nil {
			t.Fatal(err)
		}
		if err := other.End(ctx, m.ID(), "root"); err != nil {
			t.Fatal(err)
		}
		if err := other.End(ctx, "nope", "root"); !errors.Is(err, enforce.ErrNotFound) {
			t.Errorf("End(nope) = %v, want ErrNotFound", err)
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { owner.Run(rctx); close(done) }()
		defer func() { cancel(); <-done }()
		select {
		case <-m.Done():
		case <-time.After(2 * time.Second):
			t.Fatal("the owner did not see the end request")
		}
		if m.EndedBy() != "root" {
			t.Errorf("EndedBy %q", m.EndedBy())
		}
	})
	t.Run("a registry that cannot be written does not stop the session, and the audit says so", func(t *testing.T) {
		store := newStore()
		store.Down(true)
		pbx, log, r, m, _, _ := startRegistered(t, store, "d1")
		if m == nil || !pbx.did("eavesdrop sup agent-ch listen") {
			t.Fatalf("session not started: calls %v", pbx.calls)
		}
		if !strings.Contains(log.recs[0].Detail, "not listed as live") || log.recs[0].Outcome != enforce.OutcomeEnforced {
			t.Errorf("result record %+v", log.recs[0])
		}
		if n := sample(r.m.errors); n != 1 {
			t.Errorf("registry errors %v, want 1", n)
		}
		if _, err := r.List(ctx); err == nil {
			t.Error("List on a failing store answered a list")
		}
	})
	t.Run("a setup failure is audited with its cause and counted", func(t *testing.T) {
		r, err := NewRegistry(RegistryOptions{})
		if err != nil {
			t.Fatal(err)
		}
		pbx, log := &fakePBX{failEaves: errors.New("gone")}, &memAudit{}
		_, err = StartMonitor(ctx, pbx, newAudit(log), MonitorSpec{Supervisor: "sup", Target: "x", Mode: Listen, Allowed: allow(), Registry: r})
		if err == nil || log.recs[0].Cause != enforce.CauseSetupFailed || log.recs[0].Session == "" {
			t.Errorf("err %v, records %+v", err, log.recs)
		}
		if live, _ := r.List(ctx); len(live) != 0 {
			t.Errorf("a failed session is listed: %+v", live)
		}
		if n := sample(r.m.ends.WithLabelValues(enforce.CauseSetupFailed)); n != 1 {
			t.Errorf("setup_failed ends %v", n)
		}
	})
	t.Run("without a store the process's own sessions are listed and ended", func(t *testing.T) {
		_, _, r, m, _, _ := startRegistered(t, nil, "")
		live, err := r.List(ctx)
		if err != nil || len(live) != 1 || live[0].Instance == "" {
			t.Fatalf("List = %+v, %v", live, err)
		}
		if err := r.End(ctx, m.ID(), "root"); err != nil {
			t.Fatal(err)
		}
		<-m.Done()
		_ = m.End(ctx, enforce.CauseAdministrator)
		if _, err := r.Get(ctx, m.ID()); !errors.Is(err, enforce.ErrNotFound) {
			t.Errorf("Get after end: %v", err)
		}
	})
}

// sample is a counter's or gauge's value, or a histogram's count.
func sample(m prometheus.Metric) float64 {
	var d dto.Metric
	if m.Write(&d) != nil {
		return -1
	}
	switch {
	case d.Histogram != nil:
		return float64(d.Histogram.GetSampleCount())
	case d.Gauge != nil:
		return d.Gauge.GetValue()
	}
	return d.Counter.GetValue()
}

package main

import (
	"context"
	"testing"
	"time"

	"github.com/CyCoreSystems/ari/v5"
	"github.com/inconshreveable/log15"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/callwarden/callwarden/cache/memory"
	"github.com/callwarden/callwarden/config"
	"github.com/callwarden/callwarden/enforce"
)

func TestAsteriskAdapterIsOffWithoutURL(t *testing.T) {
	s, err := newAsterisk(config.Default().Asterisk, func() *enforce.Snapshot { return nil }, nil, nil, zap.NewNop(), nil)
	if err != nil || s != nil {
		t.Fatalf("newAsterisk without url = %v, %v; want nil, nil", s, err)
	}
	s.start(context.Background())() // a nil service starts and stops as a no-op
}

func TestAsteriskAdapterStopsWhileAsteriskIsUnreachable(t *testing.T) {
	c := config.Default().Asterisk
	c.URL, c.User, c.Password, c.Timeout = "http://127.0.0.1:1/ari", "cw", "pw", 100*time.Millisecond
	core, logs := observer.New(zap.DebugLevel)
	audit := enforce.AuditorFunc(func(context.Context, enforce.AuditRecord) error { return nil })
	s, err := newAsterisk(c, func() *enforce.Snapshot { return nil }, audit, memory.NewRecordings(), zap.New(core), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	wait := s.start(ctx)
	// Stop only once a failed attempt was logged: the adapter must stop
	// from inside its retry loop.
	for deadline := time.Now().Add(5 * time.Second); logs.FilterMessage("cannot connect to ARI; retrying").Len() == 0; {
		if time.Now().After(deadline) {
			cancel()
			t.Fatal("no retry was logged while Asterisk was unreachable")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	done := make(chan struct{})
	go func() { wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the adapter did not stop")
	}
	if logs.FilterMessage("cannot connect to ARI; retrying").Len() == 0 {
		t.Error("no retry was logged while Asterisk was unreachable")
	}
	for _, e := range logs.All() {
		for _, f := range e.Context {
			if f.String == "pw" {
				t.Errorf("the ARI password was logged: %v", e)
			}
		}
	}
}

func TestARILibraryLogsGoToZap(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	ari.Logger.SetHandler(log15Bridge(zap.New(core)))
	defer ari.Logger.SetHandler(log15.DiscardHandler())
	ari.Logger.Warn("creationtime unparsable", "error", "bad")
	if logs.FilterMessage("creationtime unparsable").FilterField(zap.Any("error", "bad")).Len() != 1 {
		t.Fatalf("log15 record not bridged: %v", logs.All())
	}
}

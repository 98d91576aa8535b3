package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
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
	"github.com/callwarden/callwarden/pbx/freeswitch/fstest"
)

func TestAsteriskAdapterIsOffWithoutURL(t *testing.T) {
	s, err := newAsterisk(config.Default().Asterisk, func() *enforce.Snapshot { return nil }, nil, nil, nil, nil, zap.NewNop(), nil)
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
	s, err := newAsterisk(c, func() *enforce.Snapshot { return nil }, audit, memory.NewRecordings(), nil, nil, zap.New(core), prometheus.NewRegistry())
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

func TestFreeSWITCHAdapterIsOffWithoutAddress(t *testing.T) {
	s, err := newFreeSWITCH(config.Default().FreeSWITCH, func() *enforce.Snapshot { return nil }, nil, nil, nil, nil, zap.NewNop(), nil)
	if err != nil || s != nil {
		t.Fatalf("newFreeSWITCH without esl_address = %v, %v; want nil, nil", s, err)
	}
	s.start(t.Context())()
	s.close()
}

// fakeInboundESL accepts ESL clients: auth/request, then +OK to every
// command and api.
func fakeInboundESL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_, _ = io.WriteString(c, "Content-Type: auth/request\n\n")
				r := bufio.NewReader(c)
				for {
					cmd, err := fstest.ReadCommand(r)
					if err != nil {
						return
					}
					if strings.HasPrefix(cmd, "api ") {
						_, _ = io.WriteString(c, "Content-Type: api/response\nContent-Length: 3\n\n+OK")
					} else {
						_, _ = io.WriteString(c, "Content-Type: command/reply\nReply-Text: +OK\n\n")
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

func TestServeAnswersAFreeSWITCHCheck(t *testing.T) {
	cfg := testConfig("../../deploy/examples/profiles.yaml")
	cfg.FreeSWITCH = config.FreeSWITCH{ESLAddress: fakeInboundESL(t), ESLPassword: "ClueCon",
		OutboundListen: "127.0.0.1:0", PBX: "fs1", Timeout: time.Second}
	d := MustServe(t, cfg, io.Discard)
	got := fstest.PlaySocket(t, d.app.fs.adapter.Addr().String(), func(cmd string) (string, bool) {
		switch {
		case cmd == "connect":
			return "Event-Name: CHANNEL_DATA\nUnique-ID: u-1\nChannel-Name: sofia/internal/1000%40pbx.example\n" +
				"Caller-Caller-ID-Number: 1000\nvariable_sip_from_user: 1000\nvariable_callwarden_action: check\n" +
				"variable_callwarden_mode: listen\nvariable_callwarden_target: 2001\n" +
				"Content-Type: command/reply\nReply-Text: %2BOK%0A\nSocket-Mode: async\nControl: full\n\n", false
		case strings.HasPrefix(cmd, "api uuid_setvar"):
			return "Content-Type: api/response\nContent-Length: " + strconv.Itoa(3) + "\n\n+OK", false
		case cmd == "api show channels as json": // agent 2001 is in no call
			return "Content-Type: api/response\nContent-Length: 15\n\n{\"row_count\":0}", false
		case cmd == "exit":
			return "Content-Type: command/reply\nReply-Text: +OK bye\n\n", true
		}
		return "", false
	})
	want := "connect|api show channels as json|api uuid_setvar u-1 callwarden_decision allow|api uuid_setvar u-1 callwarden_reason granted|exit"
	if strings.Join(got, "|") != want {
		t.Fatalf("commands %q; want %q", got, want)
	}
}

package main

import (
	"bufio"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/callwarden/callwarden/config"
	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/freeswitch/fstest"
)

func TestFreeSWITCHAdapterIsOffWithoutAddress(t *testing.T) {
	s, err := newFreeSWITCH(config.Default().FreeSWITCH, func() *enforce.Snapshot { return nil }, nil, zap.NewNop(), nil)
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
		case cmd == "exit":
			return "Content-Type: command/reply\nReply-Text: +OK bye\n\n", true
		}
		return "", false
	})
	want := "connect|api uuid_setvar u-1 callwarden_decision allow|api uuid_setvar u-1 callwarden_reason granted|exit"
	if strings.Join(got, "|") != want {
		t.Fatalf("commands %q; want %q", got, want)
	}
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// waitReady waits up to a minute for the daemon's /readyz.
func waitReady(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		if b, err := get(ctx, addr, "/readyz"); err == nil && strings.HasPrefix(string(b), "ok") {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("daemon on %s not ready: %w", addr, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func get(ctx context.Context, addr, path string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return b, err
}

// auditMetrics are the /metrics series cwload reports.
var auditMetrics = []string{"callwarden_audit_dropped_total", "callwarden_audit_written_total", "callwarden_audit_queue_length"}

func printAuditMetrics(ctx context.Context, addr string, out io.Writer) error {
	b, err := get(ctx, addr, "/metrics")
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		for _, m := range auditMetrics {
			if strings.HasPrefix(sc.Text(), m) {
				fmt.Fprintln(out, "metric:", sc.Text())
			}
		}
	}
	return sc.Err()
}

// waitAuditDrained waits, up to limit, for the daemon's audit queues to be
// empty.
func waitAuditDrained(ctx context.Context, addr string, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		b, err := get(ctx, addr, "/metrics")
		if err != nil {
			return
		}
		empty := true
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if line := sc.Text(); strings.HasPrefix(line, "callwarden_audit_queue_length") && !strings.HasSuffix(line, " 0") {
				empty = false
			}
		}
		if empty {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

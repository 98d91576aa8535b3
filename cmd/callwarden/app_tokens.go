package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/callwarden/callwarden/config"
	"github.com/callwarden/callwarden/pbx/httpauth"
)

// adminTokens gathers the token hashes (admin and check roles) of the
// config and of its tokens file.
func adminTokens(c config.Admin) ([]httpauth.TokenHash, error) {
	all := c.Tokens
	if c.TokensFile != "" {
		more, err := config.LoadTokensFile(c.TokensFile)
		if err != nil {
			return nil, err
		}
		all = append(slices.Clone(all), more...)
	}
	out := make([]httpauth.TokenHash, 0, len(all))
	for _, t := range all {
		name := t.User
		if t.Role == config.TokenRoleCheck {
			name = t.Name
		}
		th, err := httpauth.ParseRoleTokenHash(httpauth.Role(t.Role), name, t.SHA256)
		if err != nil {
			return nil, fmt.Errorf("admin tokens: %w", err)
		}
		out = append(out, th)
	}
	return out, nil
}

// refreshTokens loads the admin token hashes stored in Redis into
// a.dynTokens. On error the previous set stays: every admin request needs
// Redis anyway (and a live snapshot to be authorized), so a stale set
// cannot be used for anything while Redis is unreachable, and a token
// revoked meanwhile stops working at the first refresh after Redis is back.
func (a *App) refreshTokens(ctx context.Context) error {
	ts, err := a.store.AdminTokens(ctx)
	if err != nil {
		return fmt.Errorf("read admin tokens: %w", err)
	}
	hs := make([]httpauth.TokenHash, 0, len(ts))
	for _, t := range ts {
		th, err := httpauth.ParseRoleTokenHash(httpauth.Role(t.Role), t.User, t.SHA256)
		if err != nil {
			return fmt.Errorf("admin tokens in Redis: %w", err)
		}
		hs = append(hs, th)
	}
	a.dynTokens.Set(hs)
	return nil
}

// followTokens refreshes the stored admin tokens every interval until ctx
// ends, logging when refreshing starts and stops failing; the returned
// function waits for it to stop.
func (a *App) followTokens(ctx context.Context, every time.Duration) (wait func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		failing := false
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			err := a.refreshTokens(ctx)
			switch {
			case err != nil && !failing:
				a.log.Warn("admin tokens stored in Redis not refreshed; keeping the last ones read", zap.Error(err))
			case err == nil && failing:
				a.log.Info("admin tokens stored in Redis refreshed again")
			}
			failing = err != nil
		}
	}()
	return func() { <-done }
}

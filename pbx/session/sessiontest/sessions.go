package sessiontest

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/callwarden/callwarden/enforce"
)

// Sessions wraps a session store (the tests give cache/memory's) so that
// every call fails, wrapping enforce.ErrUnavailable, while Down is set.
type Sessions struct {
	enforce.SessionStore
	down atomic.Bool
}

// Down makes every call fail (true) or pass through again (false).
func (s *Sessions) Down(down bool) { s.down.Store(down) }

func (s *Sessions) err() error {
	if s.down.Load() {
		return fmt.Errorf("sessiontest: %w", enforce.ErrUnavailable)
	}
	return nil
}

// PutSession implements enforce.SessionStore.
func (s *Sessions) PutSession(ctx context.Context, l enforce.LiveSession) error {
	if err := s.err(); err != nil {
		return err
	}
	return s.SessionStore.PutSession(ctx, l)
}

// EndSession implements enforce.SessionStore.
func (s *Sessions) EndSession(ctx context.Context, e enforce.EndedSession) error {
	if err := s.err(); err != nil {
		return err
	}
	return s.SessionStore.EndSession(ctx, e)
}

// SessionEnds implements enforce.SessionStore.
func (s *Sessions) SessionEnds(ctx context.Context, ids []string) (map[string]enforce.EndedSession, error) {
	if err := s.err(); err != nil {
		return nil, err
	}
	return s.SessionStore.SessionEnds(ctx, ids)
}

// LiveSessions implements enforce.SessionStore.
func (s *Sessions) LiveSessions(ctx context.Context) ([]enforce.LiveSession, error) {
	if err := s.err(); err != nil {
		return nil, err
	}
	return s.SessionStore.LiveSessions(ctx)
}

// Session implements enforce.SessionStore.
func (s *Sessions) Session(ctx context.Context, id string) (enforce.LiveSession, error) {
	if err := s.err(); err != nil {
		return enforce.LiveSession{}, err
	}
	return s.SessionStore.Session(ctx, id)
}

// RequestSessionEnd implements enforce.SessionStore.
func (s *Sessions) RequestSessionEnd(ctx context.Context, id, by string) error {
	if err := s.err(); err != nil {
		return err
	}
	return s.SessionStore.RequestSessionEnd(ctx, id, by)
}

// Beat implements enforce.SessionStore.
func (s *Sessions) Beat(ctx context.Context, instance string, ttl time.Duration) error {
	if err := s.err(); err != nil {
		return err
	}
	return s.SessionStore.Beat(ctx, instance, ttl)
}

// Alive implements enforce.SessionStore.
func (s *Sessions) Alive(ctx context.Context, instances []string) (map[string]bool, error) {
	if err := s.err(); err != nil {
		return nil, err
	}
	return s.SessionStore.Alive(ctx, instances)
}

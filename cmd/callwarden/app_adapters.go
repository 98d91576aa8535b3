package main

import (
	"context"
	"fmt"
	"sync"

	"go.uber.org/zap"
)

// pbxAdapter is what a serving daemon does with a PBX adapter: run it.
type pbxAdapter interface {
	Run(ctx context.Context) error
}

// pbxService is one PBX adapter of a serving daemon; nil when its PBX is
// not configured. Its methods are nil-safe so serve.go calls them
// unconditionally.
type pbxService[A pbxAdapter] struct {
	name    string // "asterisk", "freeswitch": errors and logs say it
	adapter A
	log     *zap.Logger
}

// newPBXService wraps what the adapter's constructor returned: a service
// for a, or err prefixed with name.
func newPBXService[A pbxAdapter](name string, a A, err error, log *zap.Logger) (*pbxService[A], error) {
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &pbxService[A]{name: name, adapter: a, log: log}, nil
}

// start runs the adapter until ctx ends; the returned func waits for it to
// have stopped (its call handlers cleaned up). A nil service does nothing.
func (s *pbxService[A]) start(ctx context.Context) (wait func()) {
	if s == nil {
		return func() {}
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := s.adapter.Run(ctx); err != nil {
			s.log.Error(s.name+" adapter stopped", zap.Error(err))
		}
	}()
	return wg.Wait
}

// close releases what an adapter that never ran holds, for the adapters
// that hold something before Run (FreeSWITCH's outbound listener).
func (s *pbxService[A]) close() {
	if s == nil {
		return
	}
	if c, ok := any(s.adapter).(interface{ Close() }); ok {
		c.Close()
	}
}

package main

import (
	"context"
	"sync"

	"go.uber.org/zap"
)

// runAdapter runs a PBX adapter's run until ctx ends, logging stopped with
// the error it returns; the returned func waits for run to have returned.
func runAdapter(ctx context.Context, run func(context.Context) error, log *zap.Logger, stopped string) (wait func()) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := run(ctx); err != nil {
			log.Error(stopped, zap.Error(err))
		}
	}()
	return wg.Wait
}

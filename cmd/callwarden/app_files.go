package main

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/callwarden/callwarden/cache"
	"github.com/callwarden/callwarden/config"
	"github.com/callwarden/callwarden/enforce"
)

// newLoader makes the Loader that owns the App's snapshot, in either mode,
// logging to the App's logger unless opts names another.
func (a *App) newLoader(opts cache.LoaderOptions) error {
	if opts.Logger == nil {
		opts.Logger = a.log
	}
	// Every snapshot installed decides the live sessions again (a nil
	// registry, before it is made, does nothing).
	opts.OnInstall = func(s *enforce.Snapshot) { a.sessions.Redecide(s) }
	l, err := cache.NewLoader(opts)
	if err != nil {
		return err
	}
	a.loader, a.snapshot = l, l.Snapshot
	return nil
}

// profilesFiles is the policy store of file mode: the profiles files,
// read-only. Each Policy call reads and parses them afresh (the Loader
// calls it at start and on each Reload); each successful read is the next
// generation, from 1, so the generation counts the good loads, as the
// "profiles reloaded" log line says. A failed read is a *profilesError and
// leaves the generation as it was.
type profilesFiles struct {
	files []string

	// mu serialises reads, so two reloads cannot interleave their
	// generations; it guards gen and the counts of the last good read.
	mu              sync.Mutex
	gen             uint64
	profiles, users int
}

// Policy implements enforce.PolicyStore.
func (f *profilesFiles) Policy(context.Context) (enforce.Policy, uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, err := config.LoadProfiles(f.files...)
	if err != nil {
		return enforce.Policy{}, 0, &profilesError{err: err}
	}
	f.gen++
	f.profiles, f.users = len(p.Profiles), len(p.Users)
	return p, f.gen, nil
}

// Writable implements enforce.PolicyStore: always enforce.ErrReadOnly,
// the files are the source of truth.
func (*profilesFiles) Writable() error { return fmt.Errorf("profiles files: %w", enforce.ErrReadOnly) }

// ApplyPolicy implements enforce.PolicyStore: always enforce.ErrReadOnly.
func (f *profilesFiles) ApplyPolicy(context.Context, enforce.Policy, enforce.Precondition) (uint64, enforce.PolicyDiff, error) {
	return 0, enforce.PolicyDiff{}, f.Writable()
}

// counts returns the number of profiles and users of the last good read.
func (f *profilesFiles) counts() (profiles, users int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.profiles, f.users
}

// asProfilesError finds the *profilesError in a Loader's error, so the
// operator reads the files' own problems (file:line: field: message)
// rather than the Loader's wrapping of them; any other error becomes one.
func asProfilesError(err error) *profilesError {
	var pe *profilesError
	if errors.As(err, &pe) {
		return pe
	}
	return &profilesError{err: err}
}

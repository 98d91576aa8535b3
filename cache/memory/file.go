package memory

import (
	"context"
	"fmt"
	"sync"

	"github.com/callwarden/callwarden/enforce"
)

// File is a read-only enforce.PolicyStore over a profiles file (or any
// source the caller can load a whole policy from). It takes a load func so
// that cache does not import config. Every Policy call loads afresh; the
// generation starts at 1 and grows when the loaded policy differs from the
// previous load, so a Loader polling a File picks up edits.
type File struct {
	load func() (enforce.Policy, error)

	mu   sync.Mutex
	last enforce.Policy
	gen  uint64
}

// NewFile returns a File store calling load on each read.
func NewFile(load func() (enforce.Policy, error)) *File {
	return &File{load: load}
}

// Policy implements enforce.PolicyStore. A load error is returned wrapped
// as is (typically config's file:line:field errors); it is not
// enforce.ErrUnavailable, the file being there but wrong.
func (f *File) Policy(_ context.Context) (enforce.Policy, uint64, error) {
	p, err := f.load()
	if err != nil {
		return enforce.Policy{}, 0, fmt.Errorf("load profiles: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gen == 0 || !enforce.DiffPolicies(f.last, p).Empty() {
		f.gen++
		f.last = p.Clone()
	}
	return p, f.gen, nil
}

// Generation loads the file and returns its generation
// (LoaderOptions.Generation).
func (f *File) Generation(ctx context.Context) (uint64, error) {
	_, gen, err := f.Policy(ctx)
	return gen, err
}

// Writable implements enforce.PolicyStore: a file store cannot be changed
// at run time, so it returns enforce.ErrReadOnly.
func (f *File) Writable() error { return fmt.Errorf("profiles file: %w", enforce.ErrReadOnly) }

// ApplyPolicy implements enforce.PolicyStore: always enforce.ErrReadOnly.
func (f *File) ApplyPolicy(context.Context, enforce.Policy, enforce.Precondition) (uint64, enforce.PolicyDiff, error) {
	return 0, enforce.PolicyDiff{}, f.Writable()
}

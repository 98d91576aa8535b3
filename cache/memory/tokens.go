package memory

import (
	"context"
	"sync"

	"github.com/callwarden/callwarden/enforce"
)

// Tokens is an in-process enforce.TokenStore, for tests.
type Tokens struct {
	mu     sync.Mutex
	byHash map[string]enforce.AdminToken
}

var _ enforce.TokenStore = (*Tokens)(nil)

// NewTokens returns an empty store.
func NewTokens() *Tokens { return &Tokens{byHash: map[string]enforce.AdminToken{}} }

// AdminTokens implements enforce.TokenStore, sorted by user then hash.
func (m *Tokens) AdminTokens(context.Context) ([]enforce.AdminToken, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]enforce.AdminToken, 0, len(m.byHash))
	for _, t := range m.byHash {
		out = append(out, t)
	}
	enforce.SortAdminTokens(out)
	return out, nil
}

// AddAdminToken implements enforce.TokenStore.
func (m *Tokens) AddAdminToken(_ context.Context, t enforce.AdminToken) error {
	if err := t.Check(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if cur, ok := m.byHash[t.SHA256]; ok && cur != t {
		return enforce.ErrTokenTaken
	}
	m.byHash[t.SHA256] = t
	return nil
}

// RevokeAdminTokens implements enforce.TokenStore.
func (m *Tokens) RevokeAdminTokens(_ context.Context, role, name string) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for h, t := range m.byHash {
		if t.Role == role && t.User == name {
			delete(m.byHash, h)
			n++
		}
	}
	return n, nil
}

package cache

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
)

// TokenStore keeps admin API token hashes in the shared store, beside the
// ones of each daemon's config, so that a token is added or revoked once
// for every daemon. Only SHA-256 hashes (hex) are stored, never tokens.
type TokenStore interface {
	// AdminTokens returns every stored hash with the user it
	// authenticates, sorted by user then hash. Errors (Redis):
	// enforce.ErrUnavailable.
	AdminTokens(ctx context.Context) ([]AdminToken, error)
	// AddAdminToken stores the hash of one of user's tokens (a user may
	// have several). A hash already stored for another user is an error.
	AddAdminToken(ctx context.Context, t AdminToken) error
	// RevokeAdminTokens removes every hash of user and returns how many
	// there were.
	RevokeAdminTokens(ctx context.Context, user string) (int, error)
}

// AdminToken is one stored token hash: SHA256 is 64 lowercase hex digits.
type AdminToken struct {
	User   string `json:"user"`
	SHA256 string `json:"sha256"`
}

// ErrTokenTaken is returned by AddAdminToken when the hash already
// authenticates another user.
var ErrTokenTaken = errors.New("token hash already stored for another user")

// checkAdminToken validates t's form.
func checkAdminToken(t AdminToken) error {
	if strings.TrimSpace(t.User) == "" {
		return fmt.Errorf("admin token: user is required")
	}
	if len(t.SHA256) != 64 || strings.Trim(t.SHA256, "0123456789abcdef") != "" {
		return fmt.Errorf("admin token of %q: sha256 must be 64 lowercase hex digits", t.User)
	}
	return nil
}

func sortTokens(ts []AdminToken) {
	sort.Slice(ts, func(i, j int) bool {
		if ts[i].User != ts[j].User {
			return ts[i].User < ts[j].User
		}
		return ts[i].SHA256 < ts[j].SHA256
	})
}

// MemoryTokens is an in-process TokenStore, for tests.
type MemoryTokens struct {
	mu     sync.Mutex
	byHash map[string]string
}

var _ TokenStore = (*MemoryTokens)(nil)

// NewMemoryTokens returns an empty store.
func NewMemoryTokens() *MemoryTokens { return &MemoryTokens{byHash: map[string]string{}} }

// AdminTokens implements TokenStore, sorted by user then hash.
func (m *MemoryTokens) AdminTokens(context.Context) ([]AdminToken, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]AdminToken, 0, len(m.byHash))
	for h, u := range m.byHash {
		out = append(out, AdminToken{User: u, SHA256: h})
	}
	sortTokens(out)
	return out, nil
}

// AddAdminToken implements TokenStore.
func (m *MemoryTokens) AddAdminToken(_ context.Context, t AdminToken) error {
	if err := checkAdminToken(t); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if u, ok := m.byHash[t.SHA256]; ok && u != t.User {
		return ErrTokenTaken
	}
	m.byHash[t.SHA256] = t.User
	return nil
}

// RevokeAdminTokens implements TokenStore.
func (m *MemoryTokens) RevokeAdminTokens(_ context.Context, user string) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for h, u := range m.byHash {
		if u == user {
			delete(m.byHash, h)
			n++
		}
	}
	return n, nil
}

package cache

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
)

// TokenStore keeps API token hashes in the shared store, beside the ones
// of each daemon's config, so that a token is added or revoked once for
// every daemon. Only SHA-256 hashes (hex) are stored, never tokens.
type TokenStore interface {
	// AdminTokens returns every stored hash, of both roles, with the name
	// it authenticates, sorted by role ("" first), name, then hash.
	// Errors (Redis): enforce.ErrUnavailable.
	AdminTokens(ctx context.Context) ([]AdminToken, error)
	// AddAdminToken stores the hash of one of a name's tokens (a name may
	// have several). A hash already stored for another name or role is
	// ErrTokenTaken.
	AddAdminToken(ctx context.Context, t AdminToken) error
	// RevokeAdminTokens removes every hash of the name in the role and
	// returns how many there were.
	RevokeAdminTokens(ctx context.Context, role, name string) (int, error)
}

// AdminToken is one stored token hash: SHA256 is 64 lowercase hex digits.
// User is the user id of an admin token (Role ""), the name of a check
// token (Role TokenRoleCheck).
type AdminToken struct {
	User   string `json:"user"`
	Role   string `json:"role,omitempty"`
	SHA256 string `json:"sha256"`
}

// TokenRoleCheck is the Role of a check token; "" is an admin token.
const TokenRoleCheck = "check"

// ErrTokenTaken is returned by AddAdminToken when the hash already
// authenticates another name, or the same name in another role.
var ErrTokenTaken = errors.New("token hash already stored for another user")

// ErrUnknownTokenRole is returned for a role other than "" and "check".
var ErrUnknownTokenRole = errors.New("unknown token role")

// checkAdminToken validates t's form.
func checkAdminToken(t AdminToken) error {
	if t.Role != "" && t.Role != TokenRoleCheck {
		return fmt.Errorf("%w %q", ErrUnknownTokenRole, t.Role)
	}
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
		if ts[i].Role != ts[j].Role {
			return ts[i].Role < ts[j].Role
		}
		if ts[i].User != ts[j].User {
			return ts[i].User < ts[j].User
		}
		return ts[i].SHA256 < ts[j].SHA256
	})
}

// MemoryTokens is an in-process TokenStore, for tests.
type MemoryTokens struct {
	mu     sync.Mutex
	byHash map[string]AdminToken
}

var _ TokenStore = (*MemoryTokens)(nil)

// NewMemoryTokens returns an empty store.
func NewMemoryTokens() *MemoryTokens { return &MemoryTokens{byHash: map[string]AdminToken{}} }

// AdminTokens implements TokenStore, sorted by user then hash.
func (m *MemoryTokens) AdminTokens(context.Context) ([]AdminToken, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]AdminToken, 0, len(m.byHash))
	for _, t := range m.byHash {
		out = append(out, t)
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
	if cur, ok := m.byHash[t.SHA256]; ok && cur != t {
		return ErrTokenTaken
	}
	m.byHash[t.SHA256] = t
	return nil
}

// RevokeAdminTokens implements TokenStore.
func (m *MemoryTokens) RevokeAdminTokens(_ context.Context, role, name string) (int, error) {
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

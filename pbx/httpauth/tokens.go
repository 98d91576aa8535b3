// Package httpauth holds what both HTTP APIs of callwarden (pbx/checkapi
// and pbx/adminapi) share: the bearer tokens they accept (roles, hashes,
// authenticators), the parsing of the Authorization header, and the way
// they answer in JSON, errors and credential challenges included. It knows
// neither API's routes, nor the policy; it imports no package of the
// module.
package httpauth

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
)

// Role is what a token may be used for. A token has exactly one role, so
// a token handed to a PBX or a CTI tool for checks cannot change the
// policy, and an administrator's token is not scattered across dialplans.
type Role string

// The token roles.
const (
	// RoleAdmin tokens authenticate a user of the policy to the admin API;
	// its profile decides what it may do there. They cannot call
	// /v1/check: a user's token would otherwise let it probe the decisions
	// about every other user, which the admin API does not show it.
	RoleAdmin Role = "admin"
	// RoleCheck tokens authenticate a caller of /v1/check (a PBX, a CTI
	// tool), named for the audit trail; they open nothing else.
	RoleCheck Role = "check"
)

// ParseRole parses a role as configured; empty is RoleAdmin, the only
// role tokens had before roles existed.
func ParseRole(s string) (Role, error) {
	switch Role(s) {
	case "", RoleAdmin:
		return RoleAdmin, nil
	case RoleCheck:
		return RoleCheck, nil
	}
	return "", fmt.Errorf("%w %q (want admin or check)", ErrUnknownRole, s)
}

// ErrUnknownRole is returned by ParseRole for a role it does not know.
var ErrUnknownRole = errors.New("unknown token role")

// Identity is who a token authenticates: a user id of the policy (admin
// role) or a check token's name (check role).
type Identity struct {
	Name string
	Role Role
}

// TokenHash maps the SHA-256 of one bearer token to the identity it
// authenticates. Only hashes are configured, so a leaked config file does
// not hand out access.
type TokenHash struct {
	// Name is the user id of an admin token, the name of a check token.
	Name string
	// Role is RoleAdmin or RoleCheck; empty is read as RoleAdmin.
	Role   Role
	SHA256 [sha256.Size]byte
}

// ParseTokenHash builds an admin TokenHash from a user id and the hex
// SHA-256 of its token, as written in the config (`callwarden token hash`
// prints it).
func ParseTokenHash(user, hexHash string) (TokenHash, error) {
	return ParseRoleTokenHash(RoleAdmin, user, hexHash)
}

// ParseRoleTokenHash builds a TokenHash of the given role from a name (the
// user id of an admin token, the name of a check token) and a hex SHA-256.
func ParseRoleTokenHash(role Role, name, hexHash string) (TokenHash, error) {
	role, err := ParseRole(string(role))
	if err != nil {
		return TokenHash{}, err
	}
	if name == "" {
		if role == RoleCheck {
			return TokenHash{}, errors.New("check token: name is required")
		}
		return TokenHash{}, errors.New("token: user is required")
	}
	b, err := hex.DecodeString(strings.TrimSpace(hexHash))
	if err != nil || len(b) != sha256.Size {
		return TokenHash{}, fmt.Errorf("token of %q: sha256 must be %d hex digits", name, 2*sha256.Size)
	}
	t := TokenHash{Name: name, Role: role}
	copy(t.SHA256[:], b)
	return t, nil
}

// HashToken returns the hex SHA-256 of a token, the form the config holds.
func HashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// Authenticator maps a presented bearer token to an identity.
type Authenticator interface {
	// Authenticate returns the identity the token belongs to, or false. It
	// must not leak through its timing which stored token came close.
	Authenticate(token string) (Identity, bool)
}

// TokenSet is an Authenticator over a fixed list of token hashes. It is
// immutable once built and safe for concurrent use.
type TokenSet struct {
	tokens []TokenHash
}

// NewTokenSet returns the set of the given hashes.
func NewTokenSet(tokens []TokenHash) *TokenSet {
	return &TokenSet{tokens: append([]TokenHash(nil), tokens...)}
}

// Authenticate hashes the token and compares the hash with every stored
// one in constant time, without stopping at the first match, so the time
// taken says nothing about which (or whether any) hash matched.
func (s *TokenSet) Authenticate(token string) (Identity, bool) {
	if token == "" {
		return Identity{}, false
	}
	h := sha256.Sum256([]byte(token))
	var id Identity
	found := 0
	for i := range s.tokens {
		if subtle.ConstantTimeCompare(h[:], s.tokens[i].SHA256[:]) == 1 && found == 0 {
			id, found = Identity{Name: s.tokens[i].Name, Role: s.tokens[i].Role}, 1
		}
	}
	if id.Role == "" {
		id.Role = RoleAdmin
	}
	return id, found == 1
}

// DynamicTokens is an Authenticator over a set of token hashes that can be
// replaced at run time (hashes kept in Redis, refreshed periodically). It
// authenticates no one until the first Set. Safe for concurrent use.
type DynamicTokens struct {
	p atomic.Pointer[TokenSet]
}

// Set replaces the hashes.
func (d *DynamicTokens) Set(tokens []TokenHash) { d.p.Store(NewTokenSet(tokens)) }

// Authenticate implements Authenticator over the current hashes.
func (d *DynamicTokens) Authenticate(token string) (Identity, bool) {
	s := d.p.Load()
	if s == nil {
		return Identity{}, false
	}
	return s.Authenticate(token)
}

// anyOf asks every Authenticator, always all of them.
type anyOf []Authenticator

// AnyOf returns an Authenticator that accepts a token any of auths
// accepts (the first one's identity wins). It asks all of them every time, so
// the time taken does not say which one matched.
func AnyOf(auths ...Authenticator) Authenticator { return anyOf(auths) }

func (a anyOf) Authenticate(token string) (Identity, bool) {
	var id Identity
	found := false
	for _, x := range a {
		if u, ok := x.Authenticate(token); ok && !found {
			id, found = u, true
		}
	}
	return id, found
}

// BearerToken extracts the token of an "Authorization: Bearer <token>"
// header; the scheme is case-insensitive (RFC 7235).
func BearerToken(header string) (string, bool) {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

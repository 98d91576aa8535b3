package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
)

// TokenHash maps the SHA-256 of one bearer token to the user it
// authenticates. Only hashes are configured, so a leaked config file does
// not hand out admin access.
type TokenHash struct {
	User   string
	SHA256 [sha256.Size]byte
}

// ParseTokenHash builds a TokenHash from a user id and the hex SHA-256 of
// its token, as written in the config (`callwarden token hash` prints it).
func ParseTokenHash(user, hexHash string) (TokenHash, error) {
	if user == "" {
		return TokenHash{}, errors.New("token: user is required")
	}
	b, err := hex.DecodeString(strings.TrimSpace(hexHash))
	if err != nil || len(b) != sha256.Size {
		return TokenHash{}, fmt.Errorf("token of %q: sha256 must be %d hex digits", user, 2*sha256.Size)
	}
	t := TokenHash{User: user}
	copy(t.SHA256[:], b)
	return t, nil
}

// HashToken returns the hex SHA-256 of a token, the form the config holds.
func HashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// Authenticator maps a presented bearer token to a user id.
type Authenticator interface {
	// Authenticate returns the user the token belongs to, or false. It must
	// not leak through its timing which stored token came close.
	Authenticate(token string) (user string, ok bool)
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
func (s *TokenSet) Authenticate(token string) (string, bool) {
	if token == "" {
		return "", false
	}
	h := sha256.Sum256([]byte(token))
	user, found := "", 0
	for i := range s.tokens {
		if subtle.ConstantTimeCompare(h[:], s.tokens[i].SHA256[:]) == 1 && found == 0 {
			user, found = s.tokens[i].User, 1
		}
	}
	return user, found == 1
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
func (d *DynamicTokens) Authenticate(token string) (string, bool) {
	s := d.p.Load()
	if s == nil {
		return "", false
	}
	return s.Authenticate(token)
}

// anyOf asks every Authenticator, always all of them.
type anyOf []Authenticator

// AnyOf returns an Authenticator that accepts a token any of auths
// accepts (the first one's user wins). It asks all of them every time, so
// the time taken does not say which one matched.
func AnyOf(auths ...Authenticator) Authenticator { return anyOf(auths) }

func (a anyOf) Authenticate(token string) (string, bool) {
	user, found := "", false
	for _, x := range a {
		if u, ok := x.Authenticate(token); ok && !found {
			user, found = u, true
		}
	}
	return user, found
}

// bearerToken extracts the token of an "Authorization: Bearer <token>"
// header; the scheme is case-insensitive (RFC 7235).
func bearerToken(header string) (string, bool) {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

package enforce

import (
	"fmt"
	"sort"
	"strings"
)

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

// Check validates t's form: a known role, a name, and a hash of 64
// lowercase hex digits. Errors: ErrUnknownTokenRole, or a plain error.
func (t AdminToken) Check() error {
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

// SortAdminTokens orders tokens as TokenStore.AdminTokens returns them: by
// role ("" first), name, then hash.
func SortAdminTokens(ts []AdminToken) {
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

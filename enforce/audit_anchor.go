package enforce

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// ErrAnchorSignature is returned (wrapped) by AuditAnchor.Verify when the
// anchor's HMAC is missing, malformed or does not match the key: the
// anchor was altered or was signed with another key.
var ErrAnchorSignature = errors.New("audit anchor signature does not match")

// ErrNothingToAnchor is returned by NewAuditAnchor for a trail that is
// empty or fails verification: an anchor must name an intact record.
var ErrNothingToAnchor = errors.New("nothing to anchor")

// AuditAnchorVersion is the version of the anchor format written.
const AuditAnchorVersion = 1

// AuditAnchor pins the audit trail's end at one moment, to be kept outside
// Redis (a ticket, a WORM bucket, another team's mailbox): whoever can
// rewrite Redis can remove the newest records and rewrite the head to
// match, which the chain alone cannot show, but cannot make the trail hold
// the anchored record again. With a key, HMAC-SHA256 over the other
// fields lets `audit verify --anchor` tell an anchor that was edited.
type AuditAnchor struct {
	Version int `json:"version"`
	// Time is when the anchor was taken.
	Time time.Time `json:"time"`
	// First is the id of the first retained record then, and Count the
	// position of the anchored record counted from it (1-based): while no
	// record older than First is trimmed, the anchored record must still
	// be at that position.
	First string `json:"first"`
	Count int    `json:"count"`
	// ID and Hash are the last record's id and hash: the head.
	ID   string `json:"id"`
	Hash string `json:"hash"`
	// HMAC is hex HMAC-SHA256 of the fields above under the operator's
	// key; empty for an unsigned anchor.
	HMAC string `json:"hmac,omitempty"`
}

// NewAuditAnchor anchors the end of a trail from its verification result
// (VerifyAudit), which must be linked (gap records apart: they stay in
// the chain and verification keeps reporting them) and not empty.
func NewAuditAnchor(res VerifyResult, now time.Time) (AuditAnchor, error) {
	if !res.Linked() {
		return AuditAnchor{}, fmt.Errorf("%w: the audit trail fails verification", ErrNothingToAnchor)
	}
	if res.Checked == 0 || res.Last == "" {
		return AuditAnchor{}, fmt.Errorf("%w: the audit trail is empty", ErrNothingToAnchor)
	}
	return AuditAnchor{Version: AuditAnchorVersion, Time: now.UTC().Truncate(time.Second), First: res.First,
		Count: res.Checked, ID: res.Last, Hash: res.LastHash}, nil
}

// Sign returns a with its HMAC computed under key.
func (a AuditAnchor) Sign(key []byte) AuditAnchor {
	a.HMAC = hex.EncodeToString(a.mac(key))
	return a
}

// Verify checks a's HMAC under key (in constant time).
func (a AuditAnchor) Verify(key []byte) error {
	if a.HMAC == "" {
		return fmt.Errorf("%w: the anchor is not signed", ErrAnchorSignature)
	}
	got, err := hex.DecodeString(a.HMAC)
	if err != nil {
		return fmt.Errorf("%w: hmac is not hex", ErrAnchorSignature)
	}
	if !hmac.Equal(got, a.mac(key)) {
		return fmt.Errorf("%w: the anchor was altered, or signed with another key", ErrAnchorSignature)
	}
	return nil
}

// mac is HMAC-SHA256 under key of the anchor's fields, one per line in a
// fixed order, so no two anchors share the signed bytes.
func (a AuditAnchor) mac(key []byte) []byte {
	m := hmac.New(sha256.New, key)
	for _, f := range []string{"callwarden-audit-anchor", strconv.Itoa(a.Version), a.Time.UTC().Format(time.RFC3339Nano),
		a.First, strconv.Itoa(a.Count), a.ID, a.Hash} {
		m.Write([]byte(f))
		m.Write([]byte{'\n'})
	}
	return m.Sum(nil)
}

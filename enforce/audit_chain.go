package enforce

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// This file holds the audit trail's tamper evidence, the same for every
// backend: each record is stored as canonical JSON linked to its
// predecessor by a SHA-256 chain, and verification walks that chain.

// VerifyOption adds a check to VerifyAudit.
type VerifyOption func(*verifyOptions)

type verifyOptions struct {
	anchor *AuditAnchor
}

// WithAnchor makes VerifyAudit also check that the trail still holds the
// record a (taken earlier by NewAuditAnchor, and kept outside Redis) names,
// with the same hash, and that the chain up to it is intact. It detects
// the removal of records up to the anchor even when the head was
// rewritten to match. Check the anchor's signature (AuditAnchor.Verify)
// first.
func WithAnchor(a AuditAnchor) VerifyOption {
	return func(o *verifyOptions) { o.anchor = &a }
}

// VerifyResult is the outcome of an audit chain check.
type VerifyResult struct {
	// Checked is the number of records read up to and including the first
	// bad one (all of them when the chain is intact).
	Checked int `json:"checked"`
	// FirstBad is the id of the first record that fails the check; empty
	// when the chain is intact.
	FirstBad string `json:"first_bad,omitempty"`
	// Reason says why FirstBad fails.
	Reason string `json:"reason,omitempty"`
	// Truncated is true when the first retained record links to a record
	// that is no longer there: older records were trimmed (by length or
	// age) and the check starts from the first retained record, whose own
	// link cannot be checked.
	Truncated bool `json:"truncated,omitempty"`
	// First and Last are the ids of the first and last records read, and
	// LastHash the last one's hash ("" for an empty trail).
	First    string `json:"first,omitempty"`
	Last     string `json:"last,omitempty"`
	LastHash string `json:"last_hash,omitempty"`
	// Head is the hash the head named when the check started.
	Head string `json:"head,omitempty"`
	// Problem says what is wrong beyond any one record: the head names a
	// record that is not in the trail, or the anchored record is missing
	// or differs. Empty when FirstBad is set or all is well.
	Problem string `json:"problem,omitempty"`
	// Gaps are the gap records (AuditGapAction) read: places where a
	// writer found records it had appended missing from the trail (lost
	// in a failover of the store, or removed), and chained on past them.
	// The links around a gap are sound, but the trail is not complete.
	Gaps []AuditGap `json:"gaps,omitempty"`
	// Failover, when set, says that the store's primary took over from
	// another one (a failover): records appended to the former primary
	// that had not reached this one are missing without a trace in the
	// chain, unless their writer chained a gap record since. The links
	// checked hold, but the trail's completeness is not confirmed.
	Failover string `json:"failover,omitempty"`
}

// AuditGap is one gap record of a trail.
type AuditGap struct {
	// ID is the gap record's id; Detail says what was found missing.
	ID     string `json:"id"`
	Detail string `json:"detail"`
}

// AuditGapAction is the action of the record a writer appends when
// records it appended are no longer in the trail (e.g. a failover of
// the Redis primary lost them before they were replicated): the chain
// goes on from the current head, and verification reports the gap for as
// long as the gap record is retained.
const AuditGapAction = "audit.gap"

// OK reports whether the chain is intact, complete as far as its writers
// know (no gap records), ends where the head says, and holds the anchored
// record when there was one.
func (r VerifyResult) OK() bool { return r.Linked() && len(r.Gaps) == 0 }

// Linked reports whether every link checked holds, the head included, and
// the anchored record is there: OK, gaps apart.
func (r VerifyResult) Linked() bool { return r.FirstBad == "" && r.Problem == "" }

// AuditGenesis is the prev of the first record of a chain.
const AuditGenesis = ""

// AuditEntry is one stored audit record with its chain links: Raw is the
// canonical JSON of the record as hashed, Prev the hash of the previous
// record and Hash = hex(sha256(Prev || Raw)).
type AuditEntry struct {
	ID   string
	Prev string
	Hash string
	Raw  []byte
}

// AuditChainHash is the hash of a record whose canonical bytes are raw and whose
// predecessor's hash is prev.
func AuditChainHash(prev string, raw []byte) string {
	h := sha256.New()
	h.Write([]byte(prev))
	h.Write(raw)
	var sum [sha256.Size]byte
	var out [2 * sha256.Size]byte
	hex.Encode(out[:], h.Sum(sum[:0]))
	return string(out[:])
}

// CanonicalAudit is the byte form of a record that is hashed and stored:
// encoding/json of AuditRecord, whose field order is fixed, with
// the time in UTC.
func CanonicalAudit(r AuditRecord) ([]byte, error) {
	b, err := AppendCanonicalAudit(make([]byte, 0, 256), r)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// AuditChainVerifier checks entries one by one, oldest first (Next), then
// (Finish) the head and the anchor: the check of AuditLog.VerifyAudit,
// which every backend runs over its own entries.
type AuditChainVerifier struct {
	res     VerifyResult
	prevID  string
	prev    string
	started bool

	// head is the head read before the walk; headSeen is set once a
	// record with that hash was read. Reading the head first means a
	// record appended during the walk cannot look like a mismatch.
	head     string
	headSeen bool
	// anchor, when set, must be found (anchorAt is its position).
	anchor   *AuditAnchor
	anchorAt int
}

func NewAuditChainVerifier(head string, opts []VerifyOption) *AuditChainVerifier {
	var o verifyOptions
	for _, opt := range opts {
		opt(&o)
	}
	return &AuditChainVerifier{head: head, anchor: o.anchor, res: VerifyResult{Head: head}}
}

// Next checks e and reports whether the walk may go on.
func (v *AuditChainVerifier) Next(e AuditEntry) bool {
	v.res.Checked++
	bad := func(reason string) bool {
		v.res.FirstBad, v.res.Reason = e.ID, reason
		return false
	}
	if !v.started {
		v.started = true
		v.res.First = e.ID
		v.res.Truncated = e.Prev != AuditGenesis
	} else if e.Prev != v.prev {
		return bad(fmt.Sprintf("prev does not match the hash of the preceding record %s: a record between them was removed or altered", v.prevID))
	}
	if e.Hash != AuditChainHash(e.Prev, e.Raw) {
		return bad("hash does not match the record's content: the record was altered")
	}
	var r AuditRecord
	if err := json.Unmarshal(e.Raw, &r); err != nil {
		return bad("record is not valid JSON: " + err.Error())
	}
	if r.Action == AuditGapAction {
		v.res.Gaps = append(v.res.Gaps, AuditGap{ID: e.ID, Detail: r.Detail})
	}
	v.prevID, v.prev = e.ID, e.Hash
	v.res.Last, v.res.LastHash = e.ID, e.Hash
	if e.Hash == v.head {
		v.headSeen = true
	}
	if a := v.anchor; a != nil && e.ID == a.ID {
		v.anchorAt = v.res.Checked
		if e.Hash != a.Hash {
			return bad(fmt.Sprintf("the anchored record %s has hash %s, the anchor says %s: the trail up to the anchor was rewritten", a.ID, e.Hash, a.Hash))
		}
		if v.res.First == a.First && v.res.Checked != a.Count {
			return bad(fmt.Sprintf("the anchored record %s is record %d of the trail, the anchor says %d: records before it were removed or added", a.ID, v.res.Checked, a.Count))
		}
	}
	return true
}

// Partial returns the result so far, for a walk that could not read every
// entry.
func (v *AuditChainVerifier) Partial() VerifyResult { return v.res }

// Finish checks, once every entry was read without a broken link, that
// the head names the hash of a record read and that the anchored record
// was found; it returns the result.
func (v *AuditChainVerifier) Finish() VerifyResult {
	if !v.res.Linked() {
		return v.res
	}
	if v.head != AuditGenesis && !v.headSeen {
		if v.res.Checked == 0 {
			v.res.Problem = fmt.Sprintf("the head names hash %s but the stream is empty: every record was removed", v.head)
		} else {
			v.res.Problem = fmt.Sprintf("the head names hash %s, which no record has, but the stream ends at record %s (hash %s, record %d read): the records appended after it were removed",
				v.head, v.res.Last, v.res.LastHash, v.res.Checked)
		}
		return v.res
	}
	a := v.anchor
	if a == nil || v.anchorAt > 0 {
		return v.res
	}
	switch {
	case v.res.Checked == 0 || compareStreamIDs(v.res.Last, a.ID) < 0:
		end := "the stream is empty"
		if v.res.Checked > 0 {
			end = fmt.Sprintf("the stream ends at record %s (%d read)", v.res.Last, v.res.Checked)
		}
		v.res.Problem = fmt.Sprintf("%s, before the anchored record %s (hash %s, record %d when anchored at %s): records up to the anchor were removed",
			end, a.ID, a.Hash, a.Count, a.Time.UTC().Format(time.RFC3339))
	case compareStreamIDs(v.res.First, a.ID) > 0:
		v.res.Problem = fmt.Sprintf("the anchored record %s is older than the first retained record %s: it was trimmed, and the anchor can no longer be checked (take anchors more often than the trail is trimmed)",
			a.ID, v.res.First)
	default:
		v.res.Problem = fmt.Sprintf("the anchored record %s (hash %s) is missing from the stream: it was removed", a.ID, a.Hash)
	}
	return v.res
}

// compareStreamIDs orders two stream ids "<ms>-<seq>" numerically; an id
// that does not parse sorts as 0-0.
func compareStreamIDs(a, b string) int {
	am, as := splitStreamID(a)
	bm, bs := splitStreamID(b)
	if c := cmp.Compare(am, bm); c != 0 {
		return c
	}
	return cmp.Compare(as, bs)
}

func splitStreamID(id string) (ms, seq uint64) {
	m, s, _ := strings.Cut(id, "-")
	ms, _ = strconv.ParseUint(m, 10, 64)
	seq, _ = strconv.ParseUint(s, 10, 64)
	return ms, seq
}

// VerifyEntries checks a chain given as entries, oldest first, as
// VerifyAudit does on a store. Tools use it on an exported trail.
// The exported entries carry no head: the last entry is taken as the end.
func VerifyEntries(entries []AuditEntry, opts ...VerifyOption) VerifyResult {
	head := AuditGenesis
	if len(entries) > 0 {
		head = entries[len(entries)-1].Hash
	}
	v := NewAuditChainVerifier(head, opts)
	for _, e := range entries {
		if !v.Next(e) {
			break
		}
	}
	return v.Finish()
}

package memory

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/callwarden/callwarden/cache/internal/wire"
	"github.com/callwarden/callwarden/enforce"
)

// AuditLog is an in-process enforce.AuditLog with the same chain, filters and
// trimming as the Redis stream (trimming is exact here), for a single
// daemon serving a profiles file and for tests. Its content is lost on
// restart.
type AuditLog struct {
	opts    AuditOptions
	mu      sync.Mutex
	entries auditRing
	head    string
	lastMS  int64
	seq     int64
}

type auditEntry struct {
	enforce.AuditEntry
	at time.Time
}

// AuditOptions bound an audit trail (wire.AuditOptions). Zero values keep
// everything.
type AuditOptions = wire.AuditOptions

// NewAuditLog returns an empty trail bounded by opts.
func NewAuditLog(opts AuditOptions) *AuditLog {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &AuditLog{opts: opts, head: enforce.AuditGenesis}
}

// Audit implements enforce.Auditor: it appends r, linked to the current
// head of the chain.
func (m *AuditLog) Audit(_ context.Context, r enforce.AuditRecord) error {
	raw, err := enforce.CanonicalAudit(r)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.opts.Now()
	ms := now.UnixMilli()
	if ms <= m.lastMS {
		ms, m.seq = m.lastMS, m.seq+1
	} else {
		m.lastMS, m.seq = ms, 0
	}
	e := enforce.AuditEntry{ID: strconv.FormatInt(ms, 10) + "-" + strconv.FormatInt(m.seq, 10), Prev: m.head, Raw: raw}
	e.Hash = enforce.AuditChainHash(e.Prev, raw)
	m.head = e.Hash
	m.entries.push(auditEntry{e, now})
	if n := m.opts.MaxLen; n > 0 && int64(m.entries.len()) > n {
		m.entries.dropOldest(m.entries.len() - int(n))
	}
	if m.opts.MaxAge > 0 {
		cut := now.Add(-m.opts.MaxAge)
		i := 0
		for i < m.entries.len() && m.entries.at(i).at.Before(cut) {
			i++
		}
		m.entries.dropOldest(i)
	}
	return nil
}

// auditRing holds the entries of an AuditLog, oldest first, in a circular
// buffer: trimming the oldest entries moves nothing, so a full trail
// bounded by MaxLen costs the same per append as an empty one (a slice
// shifted on every append cost ~20 µs at 10,000 entries). The buffer grows
// by doubling while the trail grows and never shrinks.
type auditRing struct {
	buf   []auditEntry
	first int // index in buf of the oldest entry
	n     int // number of entries
}

func (r *auditRing) len() int { return r.n }

// at returns the i-th oldest entry, 0 <= i < len().
func (r *auditRing) at(i int) *auditEntry { return &r.buf[(r.first+i)%len(r.buf)] }

// push appends e as the newest entry.
func (r *auditRing) push(e auditEntry) {
	if r.n == len(r.buf) {
		grown := make([]auditEntry, max(16, 2*len(r.buf)))
		for i := range r.n {
			grown[i] = *r.at(i)
		}
		r.buf, r.first = grown, 0
	}
	r.buf[(r.first+r.n)%len(r.buf)] = e
	r.n++
}

// dropOldest removes the k oldest entries, clearing their slots so their
// records can be collected.
func (r *auditRing) dropOldest(k int) {
	for range k {
		r.buf[r.first] = auditEntry{}
		r.first = (r.first + 1) % len(r.buf)
		r.n--
	}
}

// ReadAudit implements enforce.AuditReader: the records matching f, oldest
// first; with f.Limit > 0, the most recent Limit of them.
func (m *AuditLog) ReadAudit(_ context.Context, f enforce.AuditFilter) ([]enforce.AuditRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []enforce.AuditRecord
	for i := m.entries.len() - 1; i >= 0; i-- {
		e := m.entries.at(i)
		var r enforce.AuditRecord
		if err := json.Unmarshal(e.Raw, &r); err != nil {
			return nil, fmt.Errorf("%w: audit record %s: %w", enforce.ErrCorrupt, e.ID, err)
		}
		if !f.Match(&r) {
			continue
		}
		out = append(out, r)
		if f.Limit > 0 && len(out) == f.Limit {
			break
		}
	}
	slices.Reverse(out)
	return out, nil
}

// VerifyAudit implements enforce.AuditLog.
func (m *AuditLog) VerifyAudit(_ context.Context, opts ...enforce.VerifyOption) (enforce.VerifyResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v := enforce.NewAuditChainVerifier(m.head, opts)
	for i := range m.entries.len() {
		if !v.Next(m.entries.at(i).AuditEntry) {
			break
		}
	}
	return v.Finish(), nil
}

// Entries returns a copy of the stored entries, oldest first, for tests and
// for exporting the trail.
func (m *AuditLog) Entries() []enforce.AuditEntry {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]enforce.AuditEntry, m.entries.len())
	for i := range out {
		e := m.entries.at(i)
		out[i] = e.AuditEntry
		out[i].Raw = slices.Clone(e.Raw)
	}
	return out
}

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
	entries []auditEntry
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
	m.entries = append(m.entries, auditEntry{e, now})
	if n := m.opts.MaxLen; n > 0 && int64(len(m.entries)) > n {
		m.entries = slices.Delete(m.entries, 0, len(m.entries)-int(n))
	}
	if m.opts.MaxAge > 0 {
		cut := now.Add(-m.opts.MaxAge)
		i := 0
		for i < len(m.entries) && m.entries[i].at.Before(cut) {
			i++
		}
		m.entries = slices.Delete(m.entries, 0, i)
	}
	return nil
}

// ReadAudit implements enforce.AuditReader: the records matching f, oldest
// first; with f.Limit > 0, the most recent Limit of them.
func (m *AuditLog) ReadAudit(_ context.Context, f enforce.AuditFilter) ([]enforce.AuditRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []enforce.AuditRecord
	for i := len(m.entries) - 1; i >= 0; i-- {
		var r enforce.AuditRecord
		if err := json.Unmarshal(m.entries[i].Raw, &r); err != nil {
			return nil, fmt.Errorf("%w: audit record %s: %w", enforce.ErrCorrupt, m.entries[i].ID, err)
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
	for _, e := range m.entries {
		if !v.Next(e.AuditEntry) {
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
	out := make([]enforce.AuditEntry, len(m.entries))
	for i, e := range m.entries {
		out[i] = e.AuditEntry
		out[i].Raw = slices.Clone(e.Raw)
	}
	return out
}

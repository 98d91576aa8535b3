// Package sessiontest holds test doubles the PBX adapters' tests share.
package sessiontest

import (
	"context"
	"sync"
	"testing"

	"github.com/callwarden/callwarden/enforce"
)

// AuditLog is an enforce.Auditor that keeps every record it is given.
type AuditLog struct {
	mu   sync.Mutex
	recs []enforce.AuditRecord
}

// Audit keeps r.
func (l *AuditLog) Audit(_ context.Context, r enforce.AuditRecord) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, r)
	return nil
}

// All returns a copy of the records kept so far, in order.
func (l *AuditLog) All() []enforce.AuditRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]enforce.AuditRecord(nil), l.recs...)
}

// Last returns the latest record; it fails tb when there is none.
func (l *AuditLog) Last(tb testing.TB) enforce.AuditRecord {
	tb.Helper()
	recs := l.All()
	if len(recs) == 0 {
		tb.Fatal("no audit record")
	}
	return recs[len(recs)-1]
}

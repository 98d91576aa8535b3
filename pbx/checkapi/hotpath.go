package checkapi

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/callwarden/callwarden/enforce"
)

// What the check path keeps from one request to the next, so that a check
// allocates and locks as little as possible: the decision counters
// resolved once per (action, decision, reason), and the audit deadline.

// decisionCounters caches the children of callwarden_decisions_total:
// WithLabelValues hashes its three labels under a lock on every call.
// Actions and reasons are small enums; a value past the cache (none today)
// is counted through the vector.
type decisionCounters struct {
	vec   *prometheus.CounterVec
	cache [maxCachedAction][2][maxCachedReason]atomic.Pointer[prometheus.Counter]
}

const (
	maxCachedAction = 32
	maxCachedReason = 32
)

func (c *decisionCounters) inc(a enforce.Action, d *enforce.Decision) {
	if int(a) >= maxCachedAction || int(d.Reason) >= maxCachedReason {
		c.vec.WithLabelValues(a.String(), d.Verdict(), d.Reason.String()).Inc()
		return
	}
	allow := 0
	if d.Allow {
		allow = 1
	}
	slot := &c.cache[a][allow][d.Reason]
	if p := slot.Load(); p != nil {
		(*p).Inc()
		return
	}
	child := c.vec.WithLabelValues(a.String(), d.Verdict(), d.Reason.String())
	slot.Store(&child)
	child.Inc()
}

// auditDeadline is a context whose deadline bounds the audit writes of the
// checks made until renewAt: one timer per half auditTimeout rather than
// one per check. Every write so gets between auditTimeout/2 and
// auditTimeout; the auditors of the daemon do not block (a queue, or
// memory).
type auditDeadline struct {
	ctx     context.Context
	cancel  context.CancelFunc // never called: the deadline releases it
	renewAt time.Time
}

// auditContext returns the context bounding an audit write at now (the
// real clock).
func (h *Handler) auditContext(now time.Time) context.Context {
	if d := h.auditDeadline.Load(); d != nil && now.Before(d.renewAt) {
		return d.ctx
	}
	ctx, cancel := context.WithDeadline(context.Background(), now.Add(auditTimeout))
	h.auditDeadline.Store(&auditDeadline{ctx: ctx, cancel: cancel, renewAt: now.Add(auditTimeout / 2)})
	return ctx
}

package main

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/callwarden/callwarden/cache"
)

// registerStoreMetrics exports the counters of a policy store followed
// by a Loader: failed loads by cause (cache.LoadFailureCause), and the
// stored action names this version ignores when the store can count
// them (redisstore.Store). A store that keeps failing to load its current
// generation fails closed after the staleness bound; these say why.
func registerStoreMetrics(reg *prometheus.Registry, st store) (*prometheus.CounterVec, error) {
	failures := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "callwarden_policy_load_failures_total",
		Help: "Failed loads of the store's current policy generation, by cause: unavailable (the store did not answer), schema, corrupt (an entry this version cannot decode), invalid (a policy that does not validate, e.g. a user on a missing profile), other. Past redis.staleness without a successful load, decisions fail closed.",
	}, []string{"cause"})
	// Every series exists from the start, so an alert sees 0.
	for _, c := range []string{cache.CauseUnavailable, cache.CauseSchema, cache.CauseCorrupt, cache.CauseInvalid, cache.CauseOther} {
		failures.WithLabelValues(c)
	}
	cs := []prometheus.Collector{failures}
	if ig, ok := st.(interface{ IgnoredActions() uint64 }); ok {
		cs = append(cs, prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "callwarden_store_unknown_actions_total",
			Help: "Action names in stored grants that this callwarden does not know, ignored while reading the policy (counted at each read): a newer callwarden or a hand edit wrote them.",
		}, func() float64 { return float64(ig.IgnoredActions()) }))
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register store metrics: %w", err)
		}
	}
	return failures, nil
}

// registerAuditMetrics exports the asynchronous audit writer's counters,
// the drops and queue lengths per lane.
func registerAuditMetrics(reg *prometheus.Registry, a *cache.AsyncAuditor) error {
	for _, c := range []prometheus.Collector{
		auditLaneCollector{a: a},
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "callwarden_audit_written_total",
			Help: "Decision audit records written to the audit stream.",
		}, func() float64 { return float64(a.Written()) }),
	} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register audit metrics: %w", err)
		}
	}
	return nil
}

var (
	auditDroppedDesc = prometheus.NewDesc("callwarden_audit_dropped_total",
		"Decision audit records dropped, by lane (lane full, Redis unreachable for longer than the retry bound, or not flushed at shutdown). "+
			"A dropped http record changes no decision; a pbx record that cannot be queued turns the PBX's allow into a deny (audit_unavailable).",
		[]string{"lane"}, nil)
	auditQueueDesc = prometheus.NewDesc("callwarden_audit_queue_length",
		"Decision audit records waiting to be written, by lane.", []string{"lane"}, nil)
)

// auditLaneCollector reports an AsyncAuditor's per-lane counters as they
// are when scraped; every lane is reported from the start, so an alert on
// drops sees 0.
type auditLaneCollector struct{ a *cache.AsyncAuditor }

func (auditLaneCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- auditDroppedDesc
	ch <- auditQueueDesc
}

func (c auditLaneCollector) Collect(ch chan<- prometheus.Metric) {
	for _, l := range cache.Lanes {
		// NewConstMetric fails only on a label count that does not match
		// the Desc, which these constants rule out.
		if m, err := prometheus.NewConstMetric(auditDroppedDesc, prometheus.CounterValue, float64(c.a.DroppedIn(l)), l.String()); err == nil {
			ch <- m
		}
		if m, err := prometheus.NewConstMetric(auditQueueDesc, prometheus.GaugeValue, float64(c.a.QueuedIn(l)), l.String()); err == nil {
			ch <- m
		}
	}
}

package asterisk

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/callwarden/callwarden/pbx/session"
)

// metrics are the adapter's Prometheus series, all prefixed
// callwarden_asterisk_.
type metrics struct {
	decisions      *prometheus.CounterVec // verb, action, decision
	intercept      prometheus.Histogram   // StasisStart -> supervisor bridged
	reconnects     prometheus.Counter
	connected      prometheus.Gauge
	dropped        *prometheus.CounterVec // reason
	unknown        *prometheus.CounterVec // type
	watchdog       *prometheus.CounterVec // kind, mode
	auditFailures  prometheus.Counter
	leaseHeld      prometheus.Gauge
	leaseTakeovers prometheus.Counter
	resyncs        prometheus.Counter
	tracked        prometheus.Gauge
	lookups        *prometheus.CounterVec // path
	stranded       *prometheus.CounterVec // outcome
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		decisions: session.NewCounterVec("callwarden_asterisk_decisions_total",
			"Decisions made for Asterisk Stasis requests, by verb (monitor, check, record, playback), action and decision.",
			"verb", "action", "decision"),
		intercept: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "callwarden_asterisk_intercept_seconds",
			Help:    "Time from a monitor request's StasisStart to the supervisor being bridged to the snoop channel.",
			Buckets: []float64{.005, .01, .02, .03, .05, .075, .1, .15, .2, .3, .5, 1, 2},
		}),
		reconnects: session.NewCounter("callwarden_asterisk_reconnects_total",
			"ARI event connections re-established after a loss (Asterisk restart, network)."),
		connected: session.NewGauge("callwarden_asterisk_connected",
			"1 while the ARI event websocket is connected, else 0."),
		dropped: session.NewCounterVec("callwarden_asterisk_dropped_events_total",
			"ARI events dropped, by reason: inbox_full (a call's handler fell behind), malformed (undecodable).",
			"reason"),
		unknown: session.NewCounterVec("callwarden_asterisk_unknown_events_total",
			"ARI events of types the ARI library does not know, dropped unread, by type.",
			"type"),
		watchdog: session.NewCounterVec("callwarden_asterisk_watchdog_total",
			"Bypasses the watchdog caught (ChanSpy, ExtenSpy, MixMonitor, foreign snoop), by kind and by mode (enforce hangs up, report-only audits); kind orphan counts sessions a previous process left in Asterisk, ended at (re)connection.",
			"kind", "mode"),
		leaseHeld: session.NewGauge("callwarden_asterisk_watchdog_lease_held",
			"1 while this daemon's watchdog acts: it holds the PBX's watchdog lease (always without a shared store), else 0."),
		leaseTakeovers: session.NewCounter("callwarden_asterisk_watchdog_lease_takeovers_total",
			"Times this daemon's watchdog started acting: it took the watchdog lease, or the store holding it could not be reached."),
		auditFailures: session.NewCounter("callwarden_asterisk_audit_failures_total",
			"Audit records that could not be written; an allow whose audit fails is turned into a deny."),
		resyncs: session.NewCounter("callwarden_asterisk_model_resyncs_total",
			"Listings of every channel and bridge merged into the model of the PBX, one at every (re)connection of the event websocket."),
		tracked: session.NewGauge("callwarden_asterisk_model_channels",
			"Channels of the PBX the model built from ARI events tracks."),
		lookups: session.NewCounterVec("callwarden_asterisk_call_lookups_total",
			"Lookups of a target's call, by path: model (the model built from events, synced) or rest (a listing of every channel and bridge, while the model is not synced).",
			"path"),
		stranded: session.NewCounterVec("callwarden_asterisk_stranded_requests_total",
			"Requests left undecided in a Stasis application (a dead sibling daemon's, or this application's by this daemon's previous process) that this daemon moved into its own to decide them, by outcome: moved, gone (hung up first), failed (a request of this application is then ended).",
			"outcome"),
	}
	m.dropped.WithLabelValues("inbox_full")
	m.lookups.WithLabelValues("model")
	m.lookups.WithLabelValues("rest")
	m.dropped.WithLabelValues("malformed")
	for _, o := range []string{"moved", "gone", "failed"} {
		m.stranded.WithLabelValues(o)
	}
	if err := session.Register(reg, m.decisions, m.intercept, m.reconnects, m.connected, m.dropped, m.unknown, m.watchdog, m.auditFailures, m.leaseHeld, m.leaseTakeovers, m.resyncs, m.tracked, m.lookups, m.stranded); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			return nil, fmt.Errorf("register asterisk metrics: %w (one adapter per registry)", err)
		}
		return nil, fmt.Errorf("register asterisk metrics: %w", err)
	}
	return m, nil
}

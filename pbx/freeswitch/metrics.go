package freeswitch

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/callwarden/callwarden/pbx/session"
)

// metrics are the adapter's Prometheus series, all prefixed
// callwarden_freeswitch_.
type metrics struct {
	decisions     *prometheus.CounterVec // verb, action, decision
	connected     prometheus.Gauge
	reconnects    prometheus.Counter
	drops         *prometheus.CounterVec // reason
	ignored       *prometheus.CounterVec // kind
	events        *prometheus.CounterVec // event
	late          prometheus.Counter
	auditFailures prometheus.Counter
	watchdog      *prometheus.CounterVec // kind, mode
	resyncs       prometheus.Counter
	tracked       prometheus.Gauge
	lookups       *prometheus.CounterVec // result
	leaseHeld     prometheus.Gauge
	takeovers     prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		decisions: session.NewCounterVec("callwarden_freeswitch_decisions_total",
			"Decisions made for FreeSWITCH socket requests, by verb, action and decision.",
			"verb", "action", "decision"),
		connected: session.NewGauge("callwarden_freeswitch_connected",
			"1 while the inbound ESL connection is up, else 0."),
		reconnects: session.NewCounter("callwarden_freeswitch_reconnects_total",
			"Inbound ESL connections made after the first one (FreeSWITCH restarted, the network broke, or callwarden dropped the connection)."),
		drops: session.NewCounterVec("callwarden_freeswitch_connection_drops_total",
			"ESL connections callwarden dropped, by reason: command_failed (a timeout above all: eslgo would hand the late reply to the next command).",
			"reason"),
		ignored: session.NewCounterVec("callwarden_freeswitch_ignored_total",
			"ESL input ignored, by kind: event (an event name callwarden did not ask for), header (a header line that is not Name: value), frame (a frame of an unexpected content type).",
			"kind"),
		events: session.NewCounterVec("callwarden_freeswitch_events_total",
			"Events received on the inbound ESL connection, by name (subscribed events only).",
			"event"),
		late: session.NewCounter("callwarden_freeswitch_events_late_total",
			"Events that arrived after a later Event-Sequence had been delivered (beyond the reordering window); delivered anyway."),
		auditFailures: session.NewCounter("callwarden_freeswitch_audit_failures_total",
			"Audit records that could not be written; an allow whose audit fails is turned into a deny."),
		watchdog: session.NewCounterVec("callwarden_freeswitch_watchdog_total",
			"Bypasses the watchdog caught (an eavesdrop or a recording started without an allowing decision), by kind (eavesdrop, record, eavesdrop_bug) and mode.",
			"kind", "mode"),
		resyncs: session.NewCounter("callwarden_freeswitch_model_resyncs_total",
			"Listings of FreeSWITCH's channels merged into the channel model: two per inbound connection (the second once the rows caught up), more when one failed."),
		tracked: session.NewGauge("callwarden_freeswitch_model_channels",
			"Channels the channel model tracks."),
		leaseHeld: session.NewGauge("callwarden_freeswitch_watchdog_lease_held",
			"1 while this daemon's watchdog acts: it holds the FreeSWITCH's watchdog lease (always without freeswitch.watchdog_lease), else 0."),
		takeovers: session.NewCounter("callwarden_freeswitch_watchdog_lease_takeovers_total",
			"Times this daemon's watchdog started acting: it took the watchdog lease, or the store holding it could not be reached."),
		lookups: session.NewCounterVec("callwarden_freeswitch_model_lookups_total",
			"Lookups of a target's live call, by result: hit (the channel model answered, FreeSWITCH confirming the channel), miss (it knew no call), stale (every channel it knew had ended meanwhile), unsynced (the model was not usable); all but hit asked FreeSWITCH.",
			"result"),
	}
	for _, r := range []string{"hit", "miss", "stale", "unsynced"} {
		m.lookups.WithLabelValues(r)
	}
	for _, k := range []string{"event", "header", "frame"} {
		m.ignored.WithLabelValues(k)
	}
	m.drops.WithLabelValues("command_failed")
	if err := session.Register(reg, m.decisions, m.connected, m.reconnects, m.drops, m.ignored, m.events, m.late, m.auditFailures, m.watchdog,
		m.resyncs, m.tracked, m.lookups, m.leaseHeld, m.takeovers); err != nil {
		return nil, fmt.Errorf("register freeswitch metrics: %w (one adapter per registry)", err)
	}
	return m, nil
}

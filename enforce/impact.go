// This file replays audited decisions against another policy: the impact
// of a change before it is applied (`callwarden profiles apply --dry-run
// --impact`, `users assign|revoke --dry-run --impact`).

package enforce

import (
	"cmp"
	"slices"
	"time"
)

// Why an audit record is not replayed (Impact.Skipped).
const (
	// SkipWatchdog: the watchdog's record of a bypass it ended, not a
	// decision anyone asked for.
	SkipWatchdog = "watchdog enforcement"
	// SkipResult: the record of what became of an allow (enforced,
	// failed, ended), replayed through its decision record.
	SkipResult = "result of a decision"
	// SkipNotPolicy: a refusal the policy did not make (no live call, an
	// unknown target, a PBX or audit failure, a store outage), so a
	// policy change cannot alter it.
	SkipNotPolicy = "not decided by the policy"
	// SkipNoUser and SkipBadAction: the record names no requester, or
	// an action this callwarden does not know.
	SkipNoUser    = "no user"
	SkipBadAction = "unknown action"
	// SkipNoRecordedAt: an action on an existing recording whose record
	// lacks the recording's time (written before records carried it),
	// which recorded_within needs.
	SkipNoRecordedAt = "no recorded_at"
	// SkipNoAssign: a profile.assign record without the profile handed
	// out (admin changes record it in their detail only).
	SkipNoAssign = "no assign_profile"
)

// ReplayRequest rebuilds the request an audit record decided and the
// instant it was decided at. It returns one of the Skip* reasons instead
// when the record is not a decision of the policy or lacks a field the
// request needs.
func (r *AuditRecord) ReplayRequest() (Request, time.Time, string) {
	switch {
	case r.Source == "watchdog":
		return Request{}, time.Time{}, SkipWatchdog
	case r.Outcome != "":
		return Request{}, time.Time{}, SkipResult
	case !policyReason(r.Reason):
		return Request{}, time.Time{}, SkipNotPolicy
	case r.User == "":
		return Request{}, time.Time{}, SkipNoUser
	}
	a, err := ParseAction(r.Action)
	if err != nil {
		return Request{}, time.Time{}, SkipBadAction
	}
	req := Request{User: r.User, Action: a, Queue: r.Queue, Team: r.Team, Agent: r.Target, Site: r.Site,
		RecordedAt: r.RecordedAt, AssignProfile: r.AssignProfile, AssignQueues: r.AssignQueues}
	switch a {
	case RecordingStop, RecordingPause, RecordingResume, RecordingPlayback, RecordingExport, RecordingDelete:
		if r.RecordedAt.IsZero() {
			return Request{}, time.Time{}, SkipNoRecordedAt
		}
	case ProfileAssign:
		if r.AssignProfile == "" {
			return Request{}, time.Time{}, SkipNoAssign
		}
	}
	at := r.Time
	if !r.At.IsZero() {
		at = r.At
	}
	return req, at, ""
}

// policyReason reports whether a record's reason is one the policy gives:
// an allow, or a refusal of Decide over a trustworthy snapshot.
func policyReason(s string) bool {
	for r := ReasonGranted; r < reasonEnd; r++ {
		if r.String() == s {
			return r != ReasonStoreUnavailable && r != ReasonInvalidRequest
		}
	}
	return false
}

// Impact is what a policy change would change among audited decisions.
type Impact struct {
	// Replayed counts the records decided again under both policies.
	Replayed int `json:"replayed"`
	// Changes are the replayed requests the two policies decide
	// differently, oldest first.
	Changes []ImpactChange `json:"changes"`
	// Counts sums Changes per user and action, sorted by user then action.
	Counts []ImpactCount `json:"counts"`
	// Drifted counts the replayed records whose audited decision the
	// current policy no longer gives: the policy changed since they were
	// written. They are judged by the current policy, not by the record.
	Drifted int `json:"drifted"`
	// Skipped counts the records not replayed, by why (Skip*).
	Skipped map[string]int `json:"skipped"`
}

// ImpactChange is one audited request the change would decide otherwise.
type ImpactChange struct {
	Record AuditRecord `json:"record"`
	// Before is the current policy's decision, After the new one's.
	Before Answer `json:"before"`
	After  Answer `json:"after"`
}

// ImpactCount is how many of one user's requests of one action change,
// each way.
type ImpactCount struct {
	User        string `json:"user"`
	Action      string `json:"action"`
	AllowToDeny int    `json:"allow_to_deny"`
	DenyToAllow int    `json:"deny_to_allow"`
}

// ReplayAudit decides every replayable record's request (ReplayRequest)
// at the instant it was decided, under the current policy cur and under
// next, and reports those the two decide differently: the impact of
// replacing cur by next on the traffic the audit trail saw. Comparing with
// cur rather than with the record keeps an earlier change (already
// applied) out of this one's impact; Impact.Drifted says how many records
// that concerns.
func ReplayAudit(cur, next *Snapshot, recs []AuditRecord) Impact {
	im := Impact{Changes: []ImpactChange{}, Counts: []ImpactCount{}, Skipped: map[string]int{}}
	counts := map[[2]string]*ImpactCount{}
	for i := range recs {
		rec := &recs[i]
		req, at, skip := rec.ReplayRequest()
		if skip != "" {
			im.Skipped[skip]++
			continue
		}
		im.Replayed++
		before, after := Decide(cur, &req, at), Decide(next, &req, at)
		if before.Verdict() != rec.Decision {
			im.Drifted++
		}
		if before.Allow == after.Allow {
			continue
		}
		im.Changes = append(im.Changes, ImpactChange{Record: *rec, Before: NewAnswer(req, before), After: NewAnswer(req, after)})
		key := [2]string{req.User, req.Action.String()}
		c := counts[key]
		if c == nil {
			c = &ImpactCount{User: key[0], Action: key[1]}
			counts[key] = c
		}
		if before.Allow {
			c.AllowToDeny++
		} else {
			c.DenyToAllow++
		}
	}
	slices.SortStableFunc(im.Changes, func(a, b ImpactChange) int { return a.Record.Time.Compare(b.Record.Time) })
	for _, c := range counts {
		im.Counts = append(im.Counts, *c)
	}
	slices.SortFunc(im.Counts, func(a, b ImpactCount) int {
		return cmp.Or(cmp.Compare(a.User, b.User), cmp.Compare(a.Action, b.Action))
	})
	return im
}

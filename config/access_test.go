package config_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/callwarden/callwarden/config"
	"github.com/callwarden/callwarden/enforce"
)

// The access review (who-can, rights) must say exactly what `check` says.
// These tests hold the two together on every seed template, with the
// users and protected targets of its suite: every user × action × target
// × instant is decided by enforce.Decide, and who-can and rights must
// agree with each decision.

// accessUniverse is the targets, instants and recording times every
// template is reviewed over.
type accessUniverse struct {
	queues, agents, teams, sites []string
	times                        []time.Time
	profiles                     []string
}

// universeOf collects every name the policy holds, plus names it does not
// (an unknown queue and agent) and no name at all.
func universeOf(pol enforce.Policy) accessUniverse {
	set := func(lists ...[]string) []string {
		out := []string{""}
		for _, l := range lists {
			for _, v := range l {
				if !slices.Contains(out, v) {
					out = append(out, v)
				}
			}
		}
		return out
	}
	var queues, teams, sites, agents, profiles []string
	for _, u := range pol.Users {
		queues, teams, sites = append(queues, u.Queues...), append(teams, u.Teams...), append(sites, u.Sites...)
		agents = append(agents, u.ID)
		agents = append(agents, u.Agents...)
	}
	for _, p := range pol.Profiles {
		profiles = append(profiles, p.Name)
		for _, g := range p.Grants {
			queues = append(queues, g.Scopes[enforce.DimQueues].Values...)
			teams = append(teams, g.Scopes[enforce.DimTeams].Values...)
			agents = append(agents, g.Scopes[enforce.DimAgents].Values...)
			sites = append(sites, g.Scopes[enforce.DimSites].Values...)
		}
	}
	return accessUniverse{
		queues:   set(queues, pol.Protected.Queues, []string{"no-such-queue"}),
		agents:   set(agents, pol.Protected.Users, []string{"stranger"}),
		teams:    set(teams),
		sites:    set(sites),
		profiles: profiles,
		times: []time.Time{
			testNow, // a Monday morning, in the teacher's period
			time.Date(2026, 11, 21, 23, 30, 0, 0, time.UTC), // Saturday night
			periodStart.Add(-time.Hour),                     // before the teacher's period
			periodEnd.Add(time.Hour),                        // after it
		},
	}
}

// requests returns the targets of action to review: every queue × agent,
// with the agent's team and site from its entry, and, for an agent the
// policy does not describe, every team and site claimed; each with a
// recent and an old recording.
func (u accessUniverse) requests(a enforce.Action, at time.Time, known func(string) bool) []enforce.Request {
	var out []enforce.Request
	for _, q := range u.queues {
		for _, ag := range u.agents {
			claims := [][2]string{{"", ""}}
			if !known(ag) {
				for _, t := range u.teams[1:] {
					claims = append(claims, [2]string{t, ""})
				}
				for _, s := range u.sites[1:] {
					claims = append(claims, [2]string{"", s})
				}
			}
			for _, c := range claims {
				for _, age := range []time.Duration{time.Hour, 60 * 24 * time.Hour} {
					out = append(out, enforce.Request{Action: a, Queue: q, Agent: ag, Team: c[0], Site: c[1], RecordedAt: at.Add(-age)})
				}
			}
		}
	}
	return out
}

// windowsPolicy adds to the templates what none of them holds: grants
// limited by weekly hours, a validity period and a recording age, scopes
// on teams, sites, listed agents and the agent itself.
const windowsPolicy = `version: 1
profiles:
  - name: night-shift
    grants:
      - actions: [monitor.listen, monitor.whisper]
        teams: assigned
        hours: {days: [sat, sun], from: "22:00", to: "06:00", tz: Europe/Paris}
      - actions: [recording.playback]
        sites: [paris]
        recorded_within: 720h
        valid_from: 2026-11-01T00:00:00Z
        valid_until: 2026-12-01T00:00:00Z
      - actions: [recording.pause, recording.resume]
        agents: self
      - actions: [monitor.barge]
        agents: [dave, erin]
        queues: all
      - actions: [audit.review]
        sites: assigned
users:
  - {id: nora, profile: night-shift, teams: [team-a], sites: [lyon]}
  - {id: dave, teams: [team-a], sites: [paris]}
  - {id: erin, teams: [team-b], sites: [lyon]}
  - {id: ceo, teams: [team-a], sites: [paris]}
protected:
  users: [ceo]
  queues: [hr-hotline]
`

// reviewedSnapshots returns the snapshots the access review is checked
// on: every template with its suite's users, and windowsPolicy.
func reviewedSnapshots(tb testing.TB) map[string]*enforce.Snapshot {
	out := map[string]*enforce.Snapshot{}
	for name, suite := range suites() {
		out[name] = mustSuiteSnapshot(tb, suite())
	}
	pol, err := config.ParseProfiles("windows.yaml", []byte(windowsPolicy))
	if err != nil {
		tb.Fatalf("windows policy: %v", err)
	}
	snap, err := enforce.NewSnapshot(pol, 1)
	if err != nil {
		tb.Fatalf("windows policy: %v", err)
	}
	out["windows"] = snap
	return out
}

func TestWhoCanAgreesWithCheckOnEveryTemplate(t *testing.T) {
	for name, snap := range reviewedSnapshots(t) {
		t.Run(name, func(t *testing.T) {
			pol := snap.Policy()
			u := universeOf(pol)
			ix := enforce.NewAccessIndex(snap)
			known := func(id string) bool { _, ok := snap.User(id); return ok }
			asked, allowed := 0, 0
			for _, a := range enforce.Actions() {
				if a == enforce.ProfileAssign {
					continue // no call target: see rights
				}
				for _, at := range u.times {
					for _, req := range u.requests(a, at, known) {
						got, err := ix.WhoCan(req, at)
						if err != nil {
							t.Fatalf("WhoCan(%+v): %v", req, err)
						}
						var want []enforce.Access
						for _, user := range pol.Users {
							r := req
							r.User = user.ID
							if d := enforce.Decide(snap, &r, at); d.Allow {
								want = append(want, enforce.Access{User: user.ID, Profile: d.Profile, Grant: d.Grant})
							}
						}
						slices.SortFunc(want, func(a, b enforce.Access) int { return strings.Compare(a.User, b.User) })
						asked++
						allowed += len(want)
						if !slices.Equal(got, want) {
							t.Fatalf("who-can %s on %+v at %s = %v, check allows %v", a, req, at.Format(time.RFC3339), got, want)
						}
					}
				}
			}
			if allowed == 0 {
				t.Fatalf("%d questions and no user ever allowed: the universe reaches nothing", asked)
			}
		})
	}
}

func TestWhoCanRefusesProfileAssign(t *testing.T) {
	snap := mustSuiteSnapshot(t, xivoSuite())
	if _, err := enforce.NewAccessIndex(snap).WhoCan(enforce.Request{Action: enforce.ProfileAssign, Queue: "sales"}, testNow); err == nil {
		t.Fatal("who-can profile.assign answered; want ErrNotReviewable")
	}
}

func TestRightsAgreeWithCheckOnEveryTemplate(t *testing.T) {
	for name, snap := range reviewedSnapshots(t) {
		t.Run(name, func(t *testing.T) {
			pol := snap.Policy()
			u := universeOf(pol)
			known := func(id string) bool { _, ok := snap.User(id); return ok }
			users := append(slices.Clone(u.agents), "") // every user, unknown ones too
			allowed := 0
			for _, user := range users {
				for _, at := range u.times {
					rights := enforce.RightsOf(snap, user, at)
					for _, a := range enforce.Actions() {
						reqs := u.requests(a, at, known)
						if a == enforce.ProfileAssign {
							reqs = assignRequests(u)
						}
						for _, req := range reqs {
							req.User = user
							d := enforce.Decide(snap, &req, at)
							if d.Allow {
								allowed++
							}
							if got := rightsAllow(t, snap, rights, req, at); got != d.Allow {
								t.Fatalf("rights of %q at %s say %v for %s on %+v; check says %v (%s)\nrights: %+v",
									user, at.Format(time.RFC3339), got, a, req, d.Allow, d.Reason, rights)
							}
						}
					}
				}
			}
			if allowed == 0 {
				t.Fatal("no request allowed: the universe reaches nothing")
			}
		})
	}
}

// assignRequests hands out every profile on no queue and on each queue.
func assignRequests(u accessUniverse) []enforce.Request {
	var out []enforce.Request
	for _, p := range append(u.profiles, "no-such-profile") {
		out = append(out, enforce.Request{Action: enforce.ProfileAssign, AssignProfile: p})
		for _, q := range u.queues[1:] {
			out = append(out, enforce.Request{Action: enforce.ProfileAssign, AssignProfile: p, AssignQueues: []string{q}})
		}
	}
	return out
}

// rightsAllow reads a user's rights as an auditor would: the request is
// allowed when the user may act at all, the target is not a protected
// exception, and one open grant of the action reaches the target (its
// team and site those of the agent's entry, when the policy has one).
func rightsAllow(tb testing.TB, snap *enforce.Snapshot, r enforce.Rights, req enforce.Request, at time.Time) bool {
	tb.Helper()
	if r.Reason != "" {
		return false
	}
	if req.Action != enforce.ProfileAssign && req.Action != enforce.AuditReview {
		if req.Agent != "" && req.Agent != req.User && slices.Contains(r.Protected.Users, req.Agent) {
			return false
		}
		if req.Queue != "" && slices.Contains(r.Protected.Queues, req.Queue) {
			return false
		}
	}
	target, known := snap.User(req.Agent)
	if known && req.Agent != "" && ((req.Team != "" && !slices.Contains(target.Teams, req.Team)) ||
		(req.Site != "" && !slices.Contains(target.Sites, req.Site))) {
		return false // the claim contradicts the agent's entry
	}
	values := func(dim string) []string {
		switch dim {
		case "queues":
			return nonEmpty(req.Queue)
		case "agents":
			return nonEmpty(req.Agent)
		case "teams":
			if req.Team != "" || !known {
				return nonEmpty(req.Team)
			}
			return target.Teams
		case "sites":
			if req.Site != "" || !known {
				return nonEmpty(req.Site)
			}
			return target.Sites
		}
		tb.Fatalf("unknown dimension %q", dim)
		return nil
	}
	reaches := func(sc enforce.ScopeRights, vals []string) bool {
		if sc.Kind == "all" {
			return true
		}
		for _, v := range vals {
			if slices.Contains(sc.Values, v) {
				return true
			}
		}
		return false
	}
	for _, ar := range r.Actions {
		if ar.Action != req.Action.String() {
			continue
		}
		for _, g := range ar.Grants {
			if !g.Open || !recentEnough(tb, g, req, at) {
				continue
			}
			ok := true
			if req.Action == enforce.ProfileAssign {
				ok = slices.Contains(g.Profiles, req.AssignProfile)
			}
			for _, sc := range g.Scopes {
				switch {
				case !ok:
				case req.Action == enforce.ProfileAssign && len(req.AssignQueues) > 0:
					if sc.Dimension == "queues" {
						for _, q := range req.AssignQueues {
							ok = ok && reaches(sc, []string{q})
						}
					}
				default:
					ok = reaches(sc, values(sc.Dimension))
				}
			}
			if ok {
				return true
			}
		}
	}
	return false
}

// recentEnough applies a grant's recorded_within to the request's
// recording.
func recentEnough(tb testing.TB, g enforce.GrantRights, req enforce.Request, at time.Time) bool {
	if g.RecordedWithin == "" {
		return true
	}
	d, err := time.ParseDuration(g.RecordedWithin)
	if err != nil {
		tb.Fatalf("recorded_within %q: %v", g.RecordedWithin, err)
	}
	return !req.RecordedAt.IsZero() && !req.RecordedAt.After(at) && at.Sub(req.RecordedAt) <= d
}

func nonEmpty(v string) []string {
	if v == "" {
		return nil
	}
	return []string{v}
}

func TestRightsDescribeTheXiVOSupervisor(t *testing.T) {
	snap := mustSuiteSnapshot(t, xivoSuite())
	r := enforce.RightsOf(snap, "alice", testNow)
	if r.Profile != "supervisor-with-recording" || r.Reason != "" {
		t.Fatalf("alice: profile %q reason %q", r.Profile, r.Reason)
	}
	var listen []string
	for _, ar := range r.Actions {
		if ar.Action == "monitor.listen" {
			for _, g := range ar.Grants {
				listen = append(listen, g.String())
			}
		}
	}
	want := fmt.Sprint([]string{"grant #0: queues sales, support (assigned)"})
	if fmt.Sprint(listen) != want {
		t.Errorf("alice's monitor.listen grants = %q, want %s", listen, want)
	}
	if !slices.Contains(r.Protected.Users, "ceo") {
		t.Errorf("protected exceptions = %+v, want ceo listed", r.Protected)
	}
	if got := enforce.RightsOf(snap, "bob", periodEnd.Add(time.Hour)); got.Reason != "outside_window" {
		t.Errorf("bob after his period: reason %q, want outside_window", got.Reason)
	}
	if got := enforce.RightsOf(snap, "nobody", testNow); got.Reason != "unknown_user" || len(got.Actions) != 0 {
		t.Errorf("unknown user: %+v, want unknown_user and no action", got)
	}
}

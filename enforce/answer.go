package enforce

import (
	"fmt"
	"strings"
)

// Answer is a decision explained: the engine's verdict with the request it
// answers, in the JSON shape that GET /v1/check, `callwarden check --output
// json` and the admin API's refusals all answer with. Each builds it with
// NewAnswer, so the shapes cannot drift.
type Answer struct {
	// Decision is "allow" or "deny".
	Decision string `json:"decision"`
	// Reason is the stable reason code, e.g. "out_of_scope".
	Reason string `json:"reason"`
	// Profile is the requester's profile, empty when it has none.
	Profile string `json:"profile"`
	// Grant is the index of the matching (or closest) grant in Profile,
	// omitted when there is none.
	Grant *int `json:"grant,omitempty"`
	// User and Action echo the request.
	User   string `json:"user"`
	Action string `json:"action"`
	// Target echoes the request's target, omitted when it names none.
	Target *AnswerTarget `json:"target,omitempty"`
	// Assign echoes a profile.assign request's profile and queues.
	Assign *AnswerAssign `json:"assign,omitempty"`
	// NotifyTarget and MaskDigits carry the profile's options, which the
	// caller applies (a tone for the agent, masked caller numbers).
	NotifyTarget bool `json:"notify_target"`
	MaskDigits   int  `json:"mask_digits"`
	// ContextClaimed is true when the request's team or site was taken on
	// the caller's word because the policy does not describe the target
	// agent; a known target's team and site always come from the policy.
	ContextClaimed bool `json:"context_claimed,omitempty"`
}

// AnswerTarget is the target of a check; empty fields were not given.
type AnswerTarget struct {
	Queue string `json:"queue,omitempty"`
	Team  string `json:"team,omitempty"`
	Agent string `json:"agent,omitempty"`
	Site  string `json:"site,omitempty"`
}

// AnswerAssign is what a profile.assign check hands out, and on which queues.
type AnswerAssign struct {
	Profile string   `json:"profile"`
	Queues  []string `json:"queues,omitempty"`
}

// NewAnswer builds the answer to req from the engine's decision d.
func NewAnswer(req Request, d Decision) Answer {
	r := Answer{
		Decision:       d.Verdict(),
		Reason:         d.Reason.String(),
		Profile:        d.Profile,
		User:           req.User,
		Action:         req.Action.String(),
		NotifyTarget:   d.NotifyTarget,
		MaskDigits:     d.MaskDigits,
		ContextClaimed: d.ClaimedContext,
	}
	if d.Grant >= 0 {
		g := d.Grant
		r.Grant = &g
	}
	if t := (AnswerTarget{Queue: req.Queue, Team: req.Team, Agent: req.Agent, Site: req.Site}); t != (AnswerTarget{}) {
		r.Target = &t
	}
	if req.AssignProfile != "" || len(req.AssignQueues) > 0 {
		r.Assign = &AnswerAssign{Profile: req.AssignProfile, Queues: req.AssignQueues}
	}
	return r
}

// Allowed reports whether the answer allows.
func (r Answer) Allowed() bool { return r.Decision == "allow" }

// Explain renders the answer as one human sentence, for `callwarden
// check` in text mode and for operators reading a CTI trace:
//
//	allow: alice may monitor.listen on queue sales: profile supervisor, grant #0
//	deny (out_of_scope): alice may not monitor.listen on queue hr: profile supervisor has grants for monitor.listen but none covers this target
func (r Answer) Explain() string {
	s := r.explain()
	if r.ContextClaimed {
		s += "\nnote: the team/site given was used as claimed, because the policy does not describe the target agent"
	}
	return s
}

func (r Answer) explain() string {
	var b strings.Builder
	if r.Allowed() {
		fmt.Fprintf(&b, "allow: %s may %s%s", r.User, r.Action, r.describeTarget())
		fmt.Fprintf(&b, ": profile %s%s", r.Profile, r.grantSuffix())
		if r.NotifyTarget {
			b.WriteString("; the target hears a tone")
		}
		if r.MaskDigits > 0 {
			fmt.Fprintf(&b, "; caller numbers masked (%d digits)", r.MaskDigits)
		}
		return b.String()
	}
	fmt.Fprintf(&b, "deny (%s): %s may not %s%s: %s", r.Reason, r.User, r.Action, r.describeTarget(), r.why())
	return b.String()
}

// String renders the target as "queue sales, agent carol" ("" when it
// names nothing).
func (t AnswerTarget) String() string { return strings.Join(t.parts(), ", ") }

func (t AnswerTarget) parts() []string {
	var parts []string
	for _, kv := range [...][2]string{{"queue", t.Queue}, {"team", t.Team}, {"agent", t.Agent}, {"site", t.Site}} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+" "+kv[1])
		}
	}
	return parts
}

// describeTarget renders the target as " on queue sales, agent carol".
func (r Answer) describeTarget() string {
	var parts []string
	if r.Assign != nil {
		s := "profile " + r.Assign.Profile
		if len(r.Assign.Queues) > 0 {
			s += " on queues " + strings.Join(r.Assign.Queues, ", ")
		}
		parts = append(parts, s)
	}
	if t := r.Target; t != nil {
		parts = append(parts, t.parts()...)
	}
	if len(parts) == 0 {
		return ""
	}
	if r.Assign != nil {
		return " (" + strings.Join(parts, ", ") + ")"
	}
	return " on " + strings.Join(parts, ", ")
}

func (r Answer) grantSuffix() string {
	if r.Grant == nil {
		return ""
	}
	return fmt.Sprintf(", grant #%d", *r.Grant)
}

// why explains a denial reason in words; the code itself stays the
// contract, this is only for people.
func (r Answer) why() string {
	grant := "its grants"
	if r.Grant != nil {
		grant = fmt.Sprintf("grant #%d", *r.Grant)
	}
	switch r.Reason {
	case ReasonUnknownUser.String():
		return fmt.Sprintf("no user %q is defined", r.User)
	case ReasonNoProfile.String():
		return "the user has no profile (no profile, no access)"
	case ReasonActionNotGranted.String():
		return fmt.Sprintf("profile %s has no grant listing %s", r.Profile, r.Action)
	case ReasonOutOfScope.String():
		return fmt.Sprintf("profile %s has grants for %s but none covers this target (closest: %s)", r.Profile, r.Action, grant)
	case ReasonOutsideWindow.String():
		if r.Grant == nil {
			return "the user's assignment is outside its validity period"
		}
		return fmt.Sprintf("profile %s, %s is outside its validity period or weekly hours", r.Profile, grant)
	case ReasonProtectedTarget.String():
		return "the target is protected: nobody may monitor it"
	case ReasonRecordingTooOld.String():
		return fmt.Sprintf("profile %s, %s only reaches recordings within its recorded_within, and this one is older or its recording time is unknown", r.Profile, grant)
	case ReasonProfileNotDelegable.String():
		return fmt.Sprintf("profile %s, %s may not hand out that profile", r.Profile, grant)
	case ReasonStoreUnavailable.String():
		return "no profiles are loaded, so nothing can be checked (fail closed)"
	case ReasonInvalidRequest.String():
		return "the request is malformed"
	case ReasonContextMismatch.String():
		return "the team or site given contradicts the target agent's own entry in the policy"
	}
	return "no grant allows it"
}

package enforce

import "time"

// ValidUntil returns when allowing decision d, taken for req at now, stops
// being valid on its own, without any change of policy: the earliest of
// the requester's valid_until, the allowing grant's valid_until and the
// end of the grant's current weekly window. The zero time means never. A
// live session re-decides at that instant; another grant may still allow
// then, and the next instant is computed afresh. A deny, a nil snapshot or
// a decision naming no grant returns the zero time.
func (s *Snapshot) ValidUntil(req *Request, d Decision, now time.Time) time.Time {
	if s == nil || !d.Allow || d.Grant < 0 {
		return time.Time{}
	}
	u, _ := s.users.get(req.User)
	if u.user == nil {
		return time.Time{}
	}
	p := s.profileTab[u.profile]
	if p == nil || d.Grant >= len(p.grants) {
		return time.Time{}
	}
	var until time.Time
	if u.window {
		until = u.validUntil()
	}
	g := &p.grants[d.Grant]
	until = earliest(until, g.ValidUntil)
	if g.Hours != nil {
		until = earliest(until, g.Hours.end(now))
	}
	return until
}

// end returns when the window containing t closes (zero when t is outside
// it): To on the day the window's current part ends, in its zone.
func (w *Weekly) end(t time.Time) time.Time {
	if !w.Contains(t) {
		return time.Time{}
	}
	loc := w.Location
	if loc == nil {
		loc = time.UTC
	}
	lt := t.In(loc)
	day := lt.Day()
	if w.To <= w.From && lt.Hour()*60+lt.Minute() >= w.From {
		day++ // an overnight window closes the next morning
	}
	return time.Date(lt.Year(), lt.Month(), day, w.To/60, w.To%60, 0, 0, loc)
}

func earliest(a, b time.Time) time.Time {
	switch {
	case a.IsZero():
		return b
	case b.IsZero() || a.Before(b):
		return a
	}
	return b
}

package enforce

import "maps"

// layered is an immutable string-keyed index shared between successive
// snapshots: a large base map that patches never touch and a small delta of
// the entries changed since (the zero value marks a removed entry). A patch
// copies the delta only, so a one-entry change to a 100k-entry index costs
// the size of the delta, not of the index; when the delta outgrows
// maxDelta the two are merged into a new base (an O(n) copy, amortised over
// as many patches).
type layered[V comparable] struct {
	base  *strIndex[V]
	delta map[string]V
	n     int
}

// minDelta is the delta size below which a layered index is never merged;
// above it the bound grows with the base (1/16 of it).
const minDelta = 256

func newLayered[V comparable](m map[string]V) layered[V] {
	ix := newStrIndex[V](len(m))
	for k, v := range m {
		ix.put(k, v)
	}
	return layeredOf(ix)
}

// layeredOf returns the layered index whose base is ix.
func layeredOf[V comparable](ix *strIndex[V]) layered[V] {
	return layered[V]{base: ix, n: ix.n}
}

// get returns the value under k.
func (l *layered[V]) get(k string) (V, bool) {
	if len(l.delta) > 0 {
		if v, ok := l.delta[k]; ok {
			var zero V
			return v, v != zero
		}
	}
	return l.base.get(k)
}

// each calls f on every live entry, in no particular order, until f
// returns false.
func (l *layered[V]) each(f func(k string, v V) bool) {
	var zero V
	for k, v := range l.delta {
		if v != zero && !f(k, v) {
			return
		}
	}
	l.base.each(func(k string, v V) bool {
		if _, shadowed := l.delta[k]; shadowed {
			return true
		}
		return f(k, v)
	})
}

// with returns l with changes applied (a zero value removes the key); l
// itself is unchanged.
func (l layered[V]) with(changes map[string]V) layered[V] {
	if len(changes) == 0 {
		return l
	}
	var zero V
	out := layered[V]{base: l.base, n: l.n, delta: make(map[string]V, len(l.delta)+len(changes))}
	maps.Copy(out.delta, l.delta)
	for k, v := range changes {
		_, had := l.get(k)
		switch {
		case had && v == zero:
			out.n--
		case !had && v != zero:
			out.n++
		}
		if !l.base.has(k) && v == zero {
			// Nothing to shadow: keep the delta small.
			delete(out.delta, k)
			continue
		}
		out.delta[k] = v
	}
	if len(out.delta) > max(minDelta, l.base.n/16) {
		out = out.merged()
	}
	return out
}

// merged folds the delta into a fresh base.
func (l layered[V]) merged() layered[V] {
	base := newStrIndex[V](l.n)
	l.each(func(k string, v V) bool {
		base.put(k, v)
		return true
	})
	return layeredOf(base)
}

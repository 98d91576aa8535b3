package enforce

import (
	"hash/maphash"
	"math/bits"
)

// strIndex is a string-keyed hash table built once and then only read: the
// base of a layered index. It exists for Decide's sake: a Go map probe
// over 100k users reads the group's control word, the slot and then the
// key's bytes elsewhere in memory, three cache misses; here a slot holds
// the key's full hash and its first bytes, so that a probe for a short key
// (up to 7 bytes, most user ids) reads one slot and no key data, and a
// longer key compares its bytes only once hash and prefix agree.
type strIndex[V any] struct {
	seed  maphash.Seed
	mask  uint64
	slots []ixSlot[V]
	n     int
}

type ixSlot[V any] struct {
	h   uint64 // the key's hash, never 0 (0: empty slot)
	pre uint64 // the key's length and first 7 bytes
	key string
	v   V
}

// inlineKey is how many bytes of a key its slot holds.
const inlineKey = 7

// newStrIndex returns an empty index sized for n keys.
func newStrIndex[V any](n int) *strIndex[V] {
	// A power of two, at most 4/5 full (100k keys fit in 2^17 slots).
	size := max(8, 1<<bits.Len(uint(n+n/4)))
	return &strIndex[V]{seed: maphash.MakeSeed(), mask: uint64(size - 1), slots: make([]ixSlot[V], size)}
}

func (ix *strIndex[V]) hash(k string) (h, pre uint64) {
	h = maphash.String(ix.seed, k) | 1
	pre = uint64(min(len(k), 255))
	for i := 0; i < len(k) && i < inlineKey; i++ {
		pre |= uint64(k[i]) << (8 * (i + 1))
	}
	return h, pre
}

// slot returns the slot holding k, or the empty slot where it would go.
func (ix *strIndex[V]) slot(k string) *ixSlot[V] {
	h, pre := ix.hash(k)
	for i := h & ix.mask; ; i = (i + 1) & ix.mask {
		s := &ix.slots[i]
		if s.h == 0 || (s.h == h && s.pre == pre && (len(k) <= inlineKey || s.key == k)) {
			return s
		}
	}
}

// get returns the value under k.
func (ix *strIndex[V]) get(k string) (V, bool) {
	s := ix.slot(k)
	return s.v, s.h != 0
}

// has reports whether k is in the index.
func (ix *strIndex[V]) has(k string) bool { return ix.slot(k).h != 0 }

// put sets k to v, growing the index as needed. Only the builder of an
// index calls it, before the index is shared.
func (ix *strIndex[V]) put(k string, v V) {
	if (ix.n+1)*5 > len(ix.slots)*4 {
		ix.grow()
	}
	s := ix.slot(k)
	if s.h == 0 {
		s.h, s.pre = ix.hash(k)
		s.key = k
		ix.n++
	}
	s.v = v
}

func (ix *strIndex[V]) grow() {
	old := ix.slots
	ix.slots = make([]ixSlot[V], 2*len(old))
	ix.mask = uint64(len(ix.slots) - 1)
	for i := range old {
		if o := &old[i]; o.h != 0 {
			s := ix.slot(o.key)
			*s = *o
		}
	}
}

// each calls f on every entry, in no particular order, until f returns
// false; it reports whether f always returned true.
func (ix *strIndex[V]) each(f func(k string, v V) bool) bool {
	for i := range ix.slots {
		if s := &ix.slots[i]; s.h != 0 && !f(s.key, s.v) {
			return false
		}
	}
	return true
}

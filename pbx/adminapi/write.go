package adminapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"go.uber.org/zap"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/httpauth"
)

// write is one conditional change: the requester's authorization, the
// generation it was based on and how to build the new policy.
type write struct {
	target string
	ifGen  uint64
	view   *policyView
	req    enforce.Request
	d      enforce.Decision
	why    string
	// missing, when set, answers 404 once the change is authorized.
	missing error
	// patch is the change entry by entry, applied when view.base is set;
	// next builds the whole new policy from view.pol otherwise.
	patch enforce.PolicyPatch
	next  func() (enforce.Policy, error)
}

// commit carries out a write: 403 when the engine refused, 409 when the
// If-Match generation is stale, 422 when the new policy is invalid, else
// ApplyPolicy (compare-and-set on the same generation). Every outcome
// after authentication is audited.
func (a *Admin) commit(w http.ResponseWriter, r *http.Request, p *principal, c write) {
	// A write based on another generation than the store's cannot be
	// applied, whoever asks: 409 before the decision, which was taken on
	// the store's generation, not the one the write names.
	if c.ifGen != c.view.gen {
		a.audit(r, p, c.target, c.d, fmt.Sprintf("not applied: If-Match generation %d, store at %d", c.ifGen, c.view.gen))
		a.conflict(w, c.view.gen, fmt.Sprintf("the policy changed: you based your change on generation %d, the store is at %d; GET it again", c.ifGen, c.view.gen))
		return
	}
	if c.ifGen == 0 && c.view.base == nil {
		// A property of the store, whoever asks (and at generation 0, a
		// never-written store, nobody is defined to be authorized).
		if _, ok := a.opts.Store.(ExactStore); !ok {
			a.audit(r, p, c.target, c.d, `not applied: If-Match "0" not supported by the store`)
			a.conflict(w, 0, errZeroNotAtomic.Error())
			return
		}
	}
	if !c.d.Allow {
		a.audit(r, p, c.target, c.d, "refused: "+c.why)
		a.log.Info("admin change refused", zap.String("user", p.user), zap.String("target", c.target),
			zap.String("reason", c.d.Reason.String()), zap.String("method", r.Method), zap.String("path", r.URL.Path))
		a.forbid(w, p, c.req, c.d, c.why)
		return
	}
	if c.missing != nil {
		a.audit(r, p, c.target, c.d, "not applied: not found")
		httpauth.WriteError(w, http.StatusNotFound, c.missing.Error())
		return
	}
	ctx, cancel := a.storeContext(r)
	defer cancel()
	var (
		gen  uint64
		diff enforce.PolicyDiff
		err  error
	)
	if base := c.view.base; base != nil {
		if _, err := base.Patch(c.patch, base.Generation()+1); err != nil {
			a.audit(r, p, c.target, c.d, "not applied: the resulting policy is invalid")
			writeValidation(w, validationFields(err))
			return
		}
		gen, diff, err = a.opts.Store.(PatchStore).ApplyPatch(ctx, base, c.patch)
	} else {
		next, nerr := c.next()
		if nerr != nil {
			a.audit(r, p, c.target, c.d, "not applied: invalid")
			writeValidation(w, validationFields(nerr))
			return
		}
		if _, verr := enforce.NewSnapshot(next, 0); verr != nil {
			a.audit(r, p, c.target, c.d, "not applied: the resulting policy is invalid")
			writeValidation(w, validationFields(verr))
			return
		}
		gen, diff, err = a.applyWhole(ctx, next, c.ifGen)
	}
	switch {
	case err == nil:
	case errors.Is(err, errZeroNotAtomic):
		a.audit(r, p, c.target, c.d, `not applied: If-Match "0" not supported by the store`)
		a.conflict(w, gen, errZeroNotAtomic.Error())
		return
	case errors.Is(err, enforce.ErrConflict):
		a.audit(r, p, c.target, c.d, "not applied: generation conflict")
		a.conflict(w, gen, "the policy changed while applying; GET it again")
		return
	case errors.Is(err, enforce.ErrReadOnly):
		a.audit(r, p, c.target, c.d, "not applied: store is read-only")
		readOnly(w)
		return
	default:
		a.audit(r, p, c.target, c.d, "not applied: store error")
		a.storeFailed(w, r, err)
		return
	}
	summary := "no change"
	if lines := enforce.FormatDiff(diff); len(lines) > 0 {
		summary = strings.Join(lines, ", ")
	}
	a.audit(r, p, c.target, c.d, fmt.Sprintf("applied generation %d -> %d: %s", c.ifGen, gen, summary))
	a.log.Info("admin change applied", zap.String("user", p.user), zap.String("target", c.target),
		zap.Uint64("generation", gen), zap.String("diff", summary))
	w.Header().Set("ETag", etag(gen))
	httpauth.WriteJSON(w, http.StatusOK, ChangeBody{Generation: gen, Diff: diff})
}

// readOnly answers a write to a read-only store.
func readOnly(w http.ResponseWriter) {
	w.Header().Set("Allow", "GET")
	httpauth.WriteError(w, http.StatusMethodNotAllowed, "read-only: this daemon serves a profiles file; edit the file (or apply it to Redis) instead")
}

// conflictBody is the 409 answer.
type conflictBody struct {
	Error      string `json:"error"`
	Generation uint64 `json:"generation,omitempty"`
}

func (a *Admin) conflict(w http.ResponseWriter, gen uint64, msg string) {
	if gen > 0 {
		w.Header().Set("ETag", etag(gen))
	}
	httpauth.WriteJSON(w, http.StatusConflict, conflictBody{Error: msg, Generation: gen})
}

// errZeroNotAtomic is the 409 for If-Match "0" on a store without
// ExactStore.
var errZeroNotAtomic = errors.New(`If-Match "0" cannot be checked atomically by this store; GET the policy and send its ETag`)

// applyWhole stores a whole policy with compare-and-set on ifGen. If-Match
// "0" means "only if the store was never written": it needs a store whose
// compare-and-set holds for 0 (ExactStore), as the PolicyStore contract
// reads 0 as "unconditional".
func (a *Admin) applyWhole(ctx context.Context, next enforce.Policy, ifGen uint64) (uint64, enforce.PolicyDiff, error) {
	if ifGen == 0 {
		es, ok := a.opts.Store.(ExactStore)
		if !ok {
			return 0, enforce.PolicyDiff{}, fmt.Errorf("%w: %w", errZeroNotAtomic, enforce.ErrConflict)
		}
		return es.ApplyPolicyAt(ctx, next, 0)
	}
	return a.opts.Store.ApplyPolicy(ctx, next, ifGen)
}

// precondition reads If-Match; on false it has answered 428 or 400.
func precondition(w http.ResponseWriter, r *http.Request) (uint64, bool) {
	gen, err := ifMatch(r)
	switch {
	case errors.Is(err, errNoIfMatch):
		httpauth.WriteError(w, http.StatusPreconditionRequired, err.Error())
		return 0, false
	case err != nil:
		httpauth.WriteError(w, http.StatusBadRequest, err.Error())
		return 0, false
	}
	return gen, true
}

// prepare runs the common first steps of a write: If-Match, body, the
// view of the policy the change is based on (view), and the requester as
// decided from that view's policy (wp). The daemon's snapshot may lag
// the store (a change not yet propagated): a supervisor demoted in the
// store must not write on the strength of the daemon's older snapshot,
// so every write is authorized on the policy of the generation it is
// applied on, and applied with compare-and-set on that generation. On
// false it has answered.
func (a *Admin) prepare(w http.ResponseWriter, r *http.Request, p *principal, wantBody bool) (ifGen uint64, body []byte, v *policyView, wp *principal, ok bool) {
	if ro, isRO := a.opts.Store.(ReadOnlyStore); isRO && ro.ReadOnly() {
		readOnly(w)
		return 0, nil, nil, nil, false
	}
	if ifGen, ok = precondition(w, r); !ok {
		return
	}
	if wantBody {
		if body, ok = a.readBody(w, r); !ok {
			return
		}
	}
	if v, ok = a.view(w, r); !ok {
		return
	}
	snap, err := v.snapshot()
	if err != nil {
		a.log.Error("admin: the stored policy does not compile", zap.Uint64("generation", v.gen), zap.Error(err))
		httpauth.WriteError(w, http.StatusInternalServerError, "the stored policy is invalid; fix it with `callwarden profiles apply`")
		return 0, nil, nil, nil, false
	}
	wp = &principal{user: p.user, snap: snap, now: p.now}
	return ifGen, body, v, wp, true
}

// view returns what a write is based on. When the store applies patches
// and the daemon's snapshot is of the store's current generation, that
// snapshot: one cheap generation read, and no read of the whole policy.
// Otherwise the whole stored policy. On false it has answered.
func (a *Admin) view(w http.ResponseWriter, r *http.Request) (*policyView, bool) {
	if ps, ok := a.opts.Store.(PatchStore); ok {
		if snap := a.opts.Snapshot(); snap != nil {
			ctx, cancel := a.storeContext(r)
			gen, err := ps.Generation(ctx)
			cancel()
			if err != nil {
				a.storeFailed(w, r, err)
				return nil, false
			}
			if gen == snap.Generation() {
				return &policyView{gen: gen, base: snap}, true
			}
		}
	}
	pol, gen, ok := a.readPolicy(w, r)
	if !ok {
		return nil, false
	}
	return &policyView{gen: gen, pol: pol}, true
}

// decodeFailed answers a body the codec rejected.
func decodeFailed(w http.ResponseWriter, err error) {
	writeValidation(w, validationFields(err))
}

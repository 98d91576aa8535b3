package adminapi

import (
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
	// patch is the change entry by entry: applied as is to the store when
	// view.base is set, otherwise to view.pol to make the whole new policy.
	patch enforce.PolicyPatch
}

// commit carries out a write: 403 when the engine refused, 409 when the
// If-Match generation is stale, 422 when the new policy is invalid, else
// ApplyPolicy or ApplyPatch (compare-and-set on the same generation). Every outcome
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
		gen, diff, err = a.opts.Store.(enforce.PatchStore).ApplyPatch(ctx, base, c.patch)
	} else {
		next := c.patch.Apply(c.view.pol)
		if _, verr := enforce.NewSnapshot(next, 0); verr != nil {
			a.audit(r, p, c.target, c.d, "not applied: the resulting policy is invalid")
			writeValidation(w, validationFields(verr))
			return
		}
		gen, diff, err = a.opts.Store.ApplyPolicy(ctx, next, enforce.IfGeneration(c.ifGen))
	}
	switch {
	case err == nil:
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
	// A read-only store (profiles files) refuses every write before
	// anything else is looked at: no If-Match, body or authorization can
	// make it succeed.
	if err := a.opts.Store.Writable(); errors.Is(err, enforce.ErrReadOnly) {
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
	if ps, ok := a.opts.Store.(enforce.PatchStore); ok {
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

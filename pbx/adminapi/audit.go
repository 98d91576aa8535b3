package adminapi

import (
	"net/http"
	"net/url"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/httpauth"
)

// AuditBody is the answer to GET /v1/audit: the matching records, oldest
// first, caller numbers masked per the reader's profile.
type AuditBody struct {
	Records []enforce.AuditRecord `json:"records"`
}

// readerOf opens a read of an optional store: 404 saying none when the
// daemon keeps no such store, otherwise the reader check (see reader).
func (a *Admin) readerOf(w http.ResponseWriter, p *principal, kept bool, none string) (admin, ok bool) {
	if !kept {
		httpauth.WriteError(w, http.StatusNotFound, none)
		return false, false
	}
	return a.reader(w, p)
}

// readAudit serves GET /v1/audit. Administrators read every record; anyone
// else with a profile reads only the records of its own actions. Caller
// numbers are masked per the reader's profile (mask_digits), on top of the
// masking applied when the record was written.
func (a *Admin) readAudit(w http.ResponseWriter, r *http.Request, p *principal) {
	admin, ok := a.readerOf(w, p, a.opts.AuditReader != nil, "this daemon keeps no audit trail")
	if !ok {
		return
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		httpauth.WriteError(w, http.StatusBadRequest, "query: "+err.Error())
		return
	}
	f, err := enforce.ParseAuditFilter(q)
	if err != nil {
		httpauth.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	req, d := p.admin()
	if !admin {
		if f.User != "" && f.User != p.user {
			a.forbid(w, p, req, d, "only an administrator may read other users' audit records")
			return
		}
		f.User = p.user
	}
	ctx, cancel := a.storeContext(r)
	defer cancel()
	recs, err := a.opts.AuditReader.ReadAudit(ctx, f)
	if err != nil {
		a.storeFailed(w, r, err)
		return
	}
	for i := range recs {
		recs[i].Caller = enforce.Mask(recs[i].Caller, d.MaskDigits)
	}
	if recs == nil {
		recs = []enforce.AuditRecord{}
	}
	httpauth.WriteJSON(w, http.StatusOK, AuditBody{Records: recs})
}

package checkapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/checkapi"
	"github.com/callwarden/callwarden/pbx/session/sessiontest"
)

// fakeAudit is an Auditor over a slice.
type fakeAudit struct{ sessiontest.AuditLog }

func (a *fakeAudit) count() int { return len(a.All()) }

const allowQuery = "/v1/check?user=alice&action=monitor.listen&queue=sales"

func TestCheckNeedsACheckToken(t *testing.T) {
	f := newFixture(t, mustSnapshot(t, testPolicy(t), 1))
	refusals := []struct {
		name   string
		path   string
		header []string
		status int
		want   string
	}{
		{"a check without a token is 401", allowQuery, []string{"Authorization", ""}, 401, "missing bearer token"},
		{"a check with an unknown token is 401", allowQuery, []string{"Authorization", "Bearer guessed"}, 401, "invalid bearer token"},
		{"a check with another scheme is 401", allowQuery, []string{"Authorization", "Basic " + pbxToken}, 401, "invalid bearer token"},
		{"a token in the query string is not accepted", allowQuery + "&access_token=" + pbxToken, []string{"Authorization", ""}, 401, "never accepted"},
		{"an admin token may not check", allowQuery, []string{"Authorization", "Bearer " + rootToken}, 403, "needs role check"},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			status, hdr, body := f.get(t, tc.path, tc.header...)
			if status != tc.status || !strings.Contains(body, tc.want) {
				t.Fatalf("got %d %s, want %d containing %q", status, body, tc.status, tc.want)
			}
			if hdr.Get("WWW-Authenticate") == "" {
				t.Error("no WWW-Authenticate challenge")
			}
			if strings.Contains(body, `"decision"`) {
				t.Errorf("a refused check was answered with a decision: %s", body)
			}
		})
	}
	t.Run("refused checks write no decision record and no decision log", func(t *testing.T) {
		if n := f.audit.count(); n != 0 {
			t.Errorf("%d audit records after refused checks, want 0", n)
		}
		if n := f.logs.FilterMessage("decision").Len(); n != 0 {
			t.Errorf("%d decision log lines after refused checks, want 0", n)
		}
		_, _, m := f.get(t, "/metrics")
		for _, want := range []string{
			`callwarden_check_unauthorized_total{reason="missing"} 2`,
			`callwarden_check_unauthorized_total{reason="invalid"} 2`,
			`callwarden_check_unauthorized_total{reason="role"} 1`,
		} {
			if !strings.Contains(m, want) {
				t.Errorf("metrics lack %s", want)
			}
		}
	})
	t.Run("a check token is answered and the record names who asked and about whom", func(t *testing.T) {
		status, _, body := f.get(t, allowQuery, "Authorization", "Bearer "+ctiToken)
		if status != http.StatusOK || !strings.HasPrefix(body, `{"decision":"allow"`) {
			t.Fatalf("got %d %s", status, body)
		}
		rec := f.audit.Last(t)
		if rec.AskedBy != "token:cti" || rec.User != "alice" || rec.Decision != "allow" {
			t.Errorf("record AskedBy=%q User=%q Decision=%q, want token:cti, alice, allow", rec.AskedBy, rec.User, rec.Decision)
		}
		logs := f.logs.FilterMessage("decision").AllUntimed()
		if len(logs) != 1 || logs[0].ContextMap()["asked_by"] != "token:cti" {
			t.Errorf("decision log lines %v, want one with asked_by=token:cti", logs)
		}
	})
}

func TestCheckRateLimitPerToken(t *testing.T) {
	// The fixture's clock stands still, so the bucket never refills.
	f := newFixtureWith(t, mustSnapshot(t, testPolicy(t), 1), checkapi.Options{CheckRate: 1, CheckBurst: 2})
	for i := range 2 {
		if status, _, body := f.get(t, allowQuery); status != http.StatusOK {
			t.Fatalf("check %d within the burst: %d %s", i, status, body)
		}
	}
	t.Run("the check past the burst is 429 with Retry-After", func(t *testing.T) {
		status, hdr, body := f.get(t, allowQuery)
		if status != http.StatusTooManyRequests || hdr.Get("Retry-After") != "1" {
			t.Fatalf("got %d Retry-After=%q %s, want 429 and 1", status, hdr.Get("Retry-After"), body)
		}
		if n := f.audit.count(); n != 2 {
			t.Errorf("%d audit records, want 2 (a limited check is not decided)", n)
		}
	})
	t.Run("another token has its own bucket", func(t *testing.T) {
		if status, _, body := f.get(t, allowQuery, "Authorization", "Bearer "+ctiToken); status != http.StatusOK {
			t.Fatalf("got %d %s", status, body)
		}
	})
	t.Run("limited checks are counted by token name", func(t *testing.T) {
		_, _, m := f.get(t, "/metrics")
		if !strings.Contains(m, `callwarden_check_rate_limited_total{token="pbx"} 1`) {
			t.Errorf("metrics lack the limited check of pbx:\n%s", m)
		}
	})
}

func TestCheckWithoutTokenOnLoopback(t *testing.T) {
	f := newFixtureWith(t, mustSnapshot(t, testPolicy(t), 1), checkapi.Options{CheckAuth: checkapi.CheckAuthLoopback})
	t.Run("a tokenless check from loopback is answered and audited as loopback", func(t *testing.T) {
		status, _, body := f.get(t, allowQuery, "Authorization", "")
		if status != http.StatusOK {
			t.Fatalf("got %d %s", status, body)
		}
		if rec := f.audit.Last(t); rec.AskedBy != "loopback" || rec.User != "alice" {
			t.Errorf("record AskedBy=%q User=%q, want loopback, alice", rec.AskedBy, rec.User)
		}
	})
	t.Run("a token, when sent, must still be valid", func(t *testing.T) {
		if status, _, body := f.get(t, allowQuery, "Authorization", "Bearer guessed"); status != http.StatusUnauthorized {
			t.Fatalf("got %d %s, want 401", status, body)
		}
	})
	t.Run("a valid token is named instead of loopback", func(t *testing.T) {
		if status, _, body := f.get(t, allowQuery); status != http.StatusOK {
			t.Fatalf("got %d %s", status, body)
		}
		if rec := f.audit.Last(t); rec.AskedBy != "token:pbx" {
			t.Errorf("AskedBy = %q, want token:pbx", rec.AskedBy)
		}
	})
}

func TestNewRejectsAnUnknownCheckAuth(t *testing.T) {
	if _, err := checkapi.New(checkapi.Options{Snapshot: (&enforce.Holder{}).Load, CheckAuth: "none"}); err == nil {
		t.Error("New accepted CheckAuth \"none\"")
	}
}

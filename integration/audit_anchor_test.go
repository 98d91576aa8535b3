package integration

import (
	"strings"
	"testing"
	"time"

	redisstore "github.com/callwarden/callwarden/cache/redis"
	"github.com/callwarden/callwarden/enforce"
)

// TestRedisAuditVerifyComparesTheHeadAndTheAnchor removes the newest
// records of a real Redis stream, as someone with Redis access could:
// verify compares the head key with the last record, and an anchor taken
// earlier catches the removal even when the head was rewritten too.
func TestRedisAuditVerifyComparesTheHeadAndTheAnchor(t *testing.T) {
	key := []byte("anchor-key")
	// setup fills a fresh stream with 20 records and anchors its end.
	setup := func(t *testing.T) (*redisstore.Store, func() []string, enforce.AuditAnchor) {
		t.Helper()
		l := suite.Lab(t)
		r := newRedisStore(t, l, nil)
		for i := range 20 {
			rec := enforce.AuditRecord{Time: decideAt.Add(time.Duration(i) * time.Second), Source: "asterisk", User: "alice",
				Action: "monitor.listen", Target: "carol", Decision: "allow", Reason: "granted"}
			mustOK(t, r.Audit(testContext(t), rec))
		}
		ids := func() []string { return mustAuditIDs(t, l, r) }
		res, err := r.VerifyAudit(testContext(t))
		if err != nil || !res.OK() {
			t.Fatalf("VerifyAudit before tampering = %+v, %v", res, err)
		}
		a, err := enforce.NewAuditAnchor(res, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return r, ids, a.Sign(key)
	}
	deleteLast := func(t *testing.T, r *redisstore.Store, ids []string, n int) {
		t.Helper()
		l := suite.Lab(t)
		mustOK(t, l.Redis.XDel(testContext(t), r.Key(redisstore.KeyAudit), ids[len(ids)-n:]...).Err())
	}
	for _, n := range []int{1, 5} {
		t.Run("deleting the last records while the head names them fails verify, naming where the stream ends", func(t *testing.T) {
			r, ids, _ := setup(t)
			all := ids()
			deleteLast(t, r, all, n)
			res, err := r.VerifyAudit(testContext(t))
			if err != nil || res.OK() {
				t.Fatalf("VerifyAudit after deleting the last %d = %+v, %v; want it to fail", n, res, err)
			}
			end := all[len(all)-n-1]
			if !strings.Contains(res.Problem, "head") || !strings.Contains(res.Problem, end) {
				t.Errorf("problem %q does not name the head and the record the stream ends at (%s)", res.Reason, end)
			}
		})
	}
	t.Run("with the head rewritten too, verify alone passes but verify against the anchor fails", func(t *testing.T) {
		r, ids, anchor := setup(t)
		all := ids()
		deleteLast(t, r, all, 5)
		l := suite.Lab(t)
		last, err := l.Redis.XRevRangeN(testContext(t), r.Key(redisstore.KeyAudit), "+", "-", 1).Result()
		if err != nil || len(last) != 1 {
			t.Fatalf("last record: %v, %v", last, err)
		}
		mustOK(t, l.Redis.Set(testContext(t), r.Key(redisstore.KeyAuditHead), last[0].Values["hash"], 0).Err())
		// Undetectable without an external anchor: the stream and its head
		// are consistent again.
		if res, err := r.VerifyAudit(testContext(t)); err != nil || !res.OK() || res.Checked != 15 {
			t.Fatalf("VerifyAudit without the anchor = %+v, %v; want intact, 15 records", res, err)
		}
		if err := anchor.Verify(key); err != nil {
			t.Fatalf("anchor signature: %v", err)
		}
		res, err := r.VerifyAudit(testContext(t), enforce.WithAnchor(anchor))
		if err != nil || res.OK() || !strings.Contains(res.Problem, anchor.ID) {
			t.Fatalf("VerifyAudit with the anchor = %+v, %v; want it to fail naming the anchored record %s", res, err, anchor.ID)
		}
	})
	t.Run("an untouched stream that grew since the anchor verifies against it", func(t *testing.T) {
		r, _, anchor := setup(t)
		if err := r.Audit(testContext(t), enforce.AuditRecord{Time: decideAt, Source: "http", User: "bob", Action: "monitor.listen",
			Decision: "deny", Reason: "out_of_scope"}); err != nil {
			t.Fatal(err)
		}
		if res, err := r.VerifyAudit(testContext(t), enforce.WithAnchor(anchor)); err != nil || !res.OK() || res.Checked != 21 {
			t.Fatalf("VerifyAudit with the anchor = %+v, %v; want intact, 21 records", res, err)
		}
	})
}

package adminapi_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/callwarden/callwarden/enforce"
)

// TestAdminWriteIsAuthorizedAtItsGeneration: a write is authorized against
// the policy of the generation it is applied on, not the daemon's snapshot.
// alice (a supervisor who may hand out teacher on her queues) is demoted in
// the store directly; the daemon has not seen it yet (its snapshot stays at
// generation 1, as during propagation).
func TestAdminWriteIsAuthorizedAtItsGeneration(t *testing.T) {
	stores := []struct {
		name string
		wrap func(*fakeStore) enforce.PolicyStore
	}{
		{"whole-policy store", nil},
		{"patch store", func(s *fakeStore) enforce.PolicyStore { return &patchStore{fakeStore: s} }},
	}
	const grantDave = `{"id":"dave","profile":"teacher","queues":["sales"]}`
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			f := newAdminFixtureOn(t, &fakeStore{policy: adminPolicy(), gen: 1}, st.wrap)
			demoted := adminPolicy()
			for i := range demoted.Users {
				if demoted.Users[i].ID == "alice" {
					demoted.Users[i].Profile = "teacher"
				}
			}
			if _, _, err := f.store.ApplyPolicy(context.Background(), demoted, enforce.IfGeneration(1)); err != nil {
				t.Fatal(err)
			}
			if g := f.holder.Load().Generation(); g != 1 {
				t.Fatalf("the daemon's snapshot moved to %d", g)
			}
			t.Run("with If-Match of the new generation the demoted supervisor is refused", func(t *testing.T) {
				r := f.do(t, "PUT", "/v1/users/dave", "alice", `"2"`, grantDave)
				if r.code != http.StatusForbidden {
					t.Fatalf("code %d body %s, want 403", r.code, r.body)
				}
				if got := r.json(t)["profile"]; got != "teacher" {
					t.Errorf("decided on profile %v, want alice's profile at generation 2 (teacher)", got)
				}
			})
			t.Run("with If-Match of the old generation the write conflicts", func(t *testing.T) {
				if r := f.do(t, "PUT", "/v1/users/dave", "alice", `"1"`, grantDave); r.code != http.StatusConflict {
					t.Fatalf("code %d body %s, want 409", r.code, r.body)
				}
			})
			t.Run("nothing was written", func(t *testing.T) {
				pol, gen, _ := f.store.Policy(context.Background())
				if gen != 2 {
					t.Errorf("store at generation %d, want 2", gen)
				}
				for _, u := range pol.Users {
					if u.ID == "dave" && u.Profile != "" {
						t.Errorf("dave was given %q", u.Profile)
					}
				}
			})
		})
	}
}

package integration

import (
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/callwarden/callwarden/integration/lab"
	"github.com/callwarden/callwarden/pbx/httpauth"
)

// imageCheckToken is the check token of the image test's config. Test only.
const imageCheckToken = "image-test-check-token"

// TestImageServesDecisionsFromAMountedProfilesFile runs callwarden's own image (built
// offline by `make lab`) as deploy/production and docs/production.md say to: a config
// and the example profiles file in /etc/callwarden, read-only root, no capabilities, its
// non-root user. /readyz answers ready, /v1/check decides with a check token and refuses
// without one, and `docker stop` ends it cleanly.
func TestImageServesDecisionsFromAMountedProfilesFile(t *testing.T) {
	profiles, err := os.ReadFile("../deploy/examples/profiles.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := `# file mode: the profiles file mounted beside this config
profiles: [/etc/callwarden/profiles.yaml]
http:
  listen: ":8080"
  check_auth: token
log:
  level: info
  format: json
admin:
  tokens:
    - {name: image-test, role: check, sha256: ` + httpauth.HashToken(imageCheckToken) + `}
`
	cw := suite.Callwarden(t, lab.CallwardenOptions{Files: map[string][]byte{
		"callwarden.yaml": []byte(cfg),
		"profiles.yaml":   profiles,
	}})
	ctx := testContext(t)
	t.Logf("image %s at %s", cw.Image, cw.URL)

	t.Run("the image runs its own non-root user, the binary as entrypoint", func(t *testing.T) {
		info, err := cw.Inspect(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got := info.Config.User; got != "65532:65532" {
			t.Errorf("user %q, want 65532:65532", got)
		}
		if got := strings.Join(info.Config.Entrypoint, " "); got != "/usr/bin/callwarden" {
			t.Errorf("entrypoint %q", got)
		}
		if got := strings.Join(info.Config.Cmd, " "); got != "serve --config /etc/callwarden/callwarden.yaml" {
			t.Errorf("cmd %q", got)
		}
	})
	t.Run("readyz answers ready", func(t *testing.T) {
		status, body, err := cw.Get(ctx, "/readyz", "")
		if err != nil || status != http.StatusOK || body != "ok\n" {
			t.Errorf("/readyz: %d %q %v", status, body, err)
		}
	})
	t.Run("check decides from the mounted profiles file", func(t *testing.T) {
		for _, tc := range []struct{ query, want string }{
			{"user=alice&action=monitor.listen&queue=sales", "allow/granted"},
			{"user=alice&action=monitor.listen&queue=hr-hotline", "deny/protected_target"},
		} {
			status, body, err := cw.Get(ctx, "/v1/check?"+tc.query, imageCheckToken)
			if err != nil || status != http.StatusOK {
				t.Fatalf("%s: %d %s %v", tc.query, status, body, err)
			}
			var ans struct{ Decision, Reason string }
			if err := json.Unmarshal([]byte(body), &ans); err != nil {
				t.Fatalf("%s: %v in %s", tc.query, err, body)
			}
			if got := ans.Decision + "/" + ans.Reason; got != tc.want {
				t.Errorf("%s: %s, want %s", tc.query, got, tc.want)
			}
		}
	})
	t.Run("a check without a token is refused", func(t *testing.T) {
		status, body, err := cw.Get(ctx, "/v1/check?user=alice&action=monitor.listen&queue=sales", "")
		if err != nil || status != http.StatusUnauthorized {
			t.Errorf("tokenless check: %d %s %v, want 401", status, body, err)
		}
	})
	t.Run("docker stop is a graceful shutdown", func(t *testing.T) {
		code, err := cw.Stop(ctx, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		logs, lerr := cw.Logs(ctx)
		if lerr != nil {
			t.Fatal(lerr)
		}
		if code != 0 || !strings.Contains(logs, `"msg":"stopped"`) {
			t.Errorf("exit code %d, want 0 after a logged stop; logs:\n%s", code, logs)
		}
	})
}

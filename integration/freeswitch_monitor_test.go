package integration

// Helpers of the FreeSWITCH monitor tests outside the scenarios table (audio,
// intercept benchmark): their own policy and waits. The monitor verb's decisions are
// in the table (scenarios_test.go).

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/integration/lab"
)

// freeswitchMonitorProfiles: agents are known by their presence id, which the lab's
// agent extension sets on the agent's leg only (both legs of a loopback call are
// named after the extension dialled: loopback/agent_<ext>-a is the customer's);
// agent 2002 is protected.
const freeswitchMonitorProfiles = `version: 1
profiles:
  - name: listen-team-a
    grants:
      - actions: [monitor.listen, monitor.whisper]
        teams: [team-a]
` + freeswitchSupervisors + `  - id: agent2001
    teams: [team-a]
    identities: ["2001", 2001@lab.callwarden]
  - id: agent2002
    teams: [team-a]
    identities: ["2002", 2002@lab.callwarden]
protected:
  users: [agent2002]
`

// freeswitchSupervisors is the end of the profiles and the supervisors of the
// FreeSWITCH policies: listen-team-b, sup1001 and sup1002.
const freeswitchSupervisors = `  - name: listen-team-b
    grants:
      - actions: [monitor.listen]
        teams: [team-b]
users:
  - id: sup1001
    profile: listen-team-a
    identities: [loopback/supervisor_1001]
  - id: sup1002
    profile: listen-team-b
    identities: [loopback/supervisor_1002]
`

// fsMonitorRecords waits for n audit records of the monitor request made on channel
// uuid (the decision, then the enforcement's result on an allow).
func fsMonitorRecords(ctx context.Context, t *testing.T, l *lab.TestLab, uuid string, n int) []enforce.AuditRecord {
	t.Helper()
	return waitAuditOn(ctx, t, l, fmt.Sprintf("%d audit records of the request on %s", n, uuid), "freeswitch", uuid, n)
}

// waitListed waits until `show channels` lists uuid running its tone (playback):
// FreeSWITCH writes its rows about a second after a channel appears, and updates a
// row's presence id only with the channel's next application, and callwarden finds
// the target's call there, by channel name or presence id.
func waitListed(ctx context.Context, t testing.TB, fs *lab.TestFreeSWITCH, uuid string) {
	t.Helper()
	waitFor(ctx, t, uuid+" listed by show channels", func() error {
		chs, err := fs.Channels(ctx)
		if err != nil {
			return err
		}
		for _, c := range chs {
			if c.UUID == uuid && c.Application == "playback" {
				return nil
			}
		}
		return fmt.Errorf("not among %d channels, or not speaking yet", len(chs))
	})
}

// shortly bounds one wait of a subtest, so a failure does not use the whole budget.
func shortly(t *testing.T, ctx context.Context) context.Context {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/callwarden/callwarden/integration/lab"
)

// actor is a person of the scenario: a user of the profiles files and the
// lab phone they call from.
type actor struct {
	user, phone, profile, scope string
}

func (a actor) String() string {
	return fmt.Sprintf("%s (%s, phone %s, %s)", a.user, a.profile, a.phone, a.scope)
}

// The cast, from deploy/examples/profiles.yaml and deploy/demo/teachers.yaml.
var (
	alice = actor{"alice", "1001", "supervisor-with-recording", "queues sales+support"}
	carol = actor{"carol", "1002", "supervisor-without-recording", "queue support only"}
	tina  = actor{"tina", "1005", "demo-teacher", "sales, period 2026-01-01..2036-01-01"}
	tom   = actor{"tom", "1006", "demo-teacher", "sales, period ended 2026-07-01"}
)

// The monitored call: a customer in the sales queue, answered by agent 2001
// (the first member of sales, strategy linear).
const (
	queue      = "sales"
	agentExt   = "2001"
	agentUser  = "agent2001"
	customerID = `"Customer" <0612345678>`
)

// agentCall is the customer's call once an agent answered it.
type agentCall struct {
	customer lab.LocalCall // First: the customer's phone; Second: in Queue()
	member   lab.Channel   // Local/2001@cw-agent-...;1, bridged with customer.Second
	bridge   lab.Bridge    // the queue's bridge
	// queued is the name of customer.Second, the channel in Queue().
	queued string
	// roles names the call's channels (by id) for the printout.
	roles map[string]string
}

// scenario plays the steps in order and returns their results; it stops
// early only when ctx ends.
func (d *demo) scenario(ctx context.Context) []*stepResult {
	l := &stepList{ctx: ctx, out: d.out}
	add, results := l.add, func() []*stepResult { return l.results }

	d.printf("\n== a customer calls the %s queue; agent %s answers\n", queue, agentExt)
	call, err := d.placeCustomerCall(ctx)
	if err != nil {
		r := &stepResult{Title: "the customer's call is answered by agent " + agentExt, Want: "a bridge between the customer and agent " + agentExt}
		r.failErr("no answered call to monitor", err)
		add(r)
		return results()
	}
	d.printf("   PBX: bridge %s holds %s (customer) and %s (agent %s)\n",
		call.bridge.ID, call.queued, call.member.Name, agentExt)

	sess, r := d.listen(ctx, call)
	if !add(r) {
		return results()
	}
	sess, r = d.switchMode(ctx, call, sess, "5", "whisper")
	if !add(r) {
		return results()
	}
	sess, r = d.switchMode(ctx, call, sess, "6", "barge")
	d.hangUpSession(ctx, r, sess)
	if !add(r) {
		return results()
	}
	if !add(d.refused(ctx)) {
		return results()
	}
	rec, r := d.recordStart(ctx, call)
	if !add(r) {
		return results()
	}
	if !add(d.recordStop(ctx, rec)) {
		return results()
	}
	if !add(d.playback(ctx, tina, rec, true)) {
		return results()
	}
	if !add(d.playback(ctx, tom, rec, false)) {
		return results()
	}
	if !add(d.rogueChanSpy(ctx)) {
		return results()
	}
	add(d.auditVerify(ctx))
	return results()
}

// placeCustomerCall puts a customer in the sales queue and waits until an
// agent's channel is bridged with it.
func (d *demo) placeCustomerCall(ctx context.Context) (agentCall, error) {
	id := d.newID("customer")
	c := agentCall{customer: lab.LocalCall{First: id, Second: id + "-queue"}}
	d.track(c.customer.First, c.customer.Second)
	if _, err := d.lab.ARI.Originate(ctx, lab.OriginateParams{
		Endpoint:       "Local/" + queue + "@cw-customer/n",
		Context:        "cw-customer-audio",
		Extension:      "play", // the customer talks (a prompt in a loop): the recording is not silent
		Priority:       1,
		CallerID:       customerID,
		ChannelID:      c.customer.First,
		OtherChannelID: c.customer.Second,
	}); err != nil {
		return c, err
	}
	prefix := "Local/" + agentExt + "@cw-agent-"
	err := poll(ctx, 2*d.opts.wait, func(ctx context.Context) (bool, error) {
		bridges, err := d.lab.ARI.Bridges(ctx)
		if err != nil {
			return false, err
		}
		for _, b := range bridges {
			if !b.Has(c.customer.Second) {
				continue
			}
			for _, id := range b.Channels {
				ch, err := d.lab.ARI.Channel(ctx, id)
				if err == nil && strings.HasPrefix(ch.Name, prefix) && strings.HasSuffix(ch.Name, ";1") {
					c.member, c.bridge = ch, b
					return true, nil
				}
			}
		}
		return false, nil
	})
	if errors.Is(err, errPollTimeout) {
		return c, fmt.Errorf("agent %s never answered the customer in queue %s within %s", agentExt, queue, 2*d.opts.wait)
	}
	if err != nil {
		return c, err
	}
	c.roles = map[string]string{
		c.customer.First:  "the customer's phone",
		c.customer.Second: "the customer's side of the call",
		c.member.ID:       "agent " + agentExt + "'s side of the call",
	}
	return c, d.nameChannels(ctx, &c)
}

// nameChannels names the customer's queued channel and adds the agent's
// own phone (the ;2 half of its Local channel) to the call's roles.
func (d *demo) nameChannels(ctx context.Context, c *agentCall) error {
	chans, err := d.lab.ARI.Channels(ctx)
	if err != nil {
		return err
	}
	phone := strings.TrimSuffix(c.member.Name, ";1") + ";2"
	for _, ch := range chans {
		switch {
		case ch.Name == phone:
			c.roles[ch.ID] = "agent " + agentExt + "'s phone"
		case ch.ID == c.customer.Second:
			c.queued = ch.Name
		}
	}
	return nil
}

// supervisorLine is a supervisor's call: First dials the feature code;
// Second is the handset, in the observer's Stasis application once
// answered, where the demo presses keys.
type supervisorLine struct {
	who actor
	lab.LocalCall
	name string // First's channel name
}

// dial makes who dial exten from their phone: Local/<phone>@cw-demo-handset/n,
// the ;1 half running exten in context cw-supervisors (callwarden-features),
// with who's caller id, as a desk phone would.
func (d *demo) dial(ctx context.Context, who actor, exten string) (supervisorLine, error) {
	id := d.newID(who.user)
	line := supervisorLine{who: who, LocalCall: lab.LocalCall{First: id, Second: id + "-handset"}}
	d.track(line.First, line.Second)
	ch, err := d.lab.ARI.Originate(ctx, lab.OriginateParams{
		Endpoint:       "Local/" + who.phone + "@" + handsetContext + "/n",
		Context:        "cw-supervisors",
		Extension:      exten,
		Priority:       1,
		CallerID:       fmt.Sprintf("%q <%s>", who.user, who.phone),
		ChannelID:      line.First,
		OtherChannelID: line.Second,
		Variables:      map[string]string{"CALLWARDEN_SUPERVISOR": who.phone},
	})
	if err != nil {
		return line, fmt.Errorf("originate %s's line: %w", who.user, err)
	}
	line.name = ch.Name
	return line, nil
}

package asterisk

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/CyCoreSystems/ari/v5"

	"github.com/callwarden/callwarden/enforce"
)

// Channel variables of the dialplan contract.
const (
	varUser      = "CALLWARDEN_USER"     // set by the dialplan: who is asking (trusted)
	varQueue     = "CALLWARDEN_QUEUE"    // set by the dialplan: the call's queue
	varDecision  = "CALLWARDEN_DECISION" // set by callwarden: allow or deny
	varReason    = "CALLWARDEN_REASON"   // set by callwarden: the reason code
	varRecording = "CALLWARDEN_RECORDING"
	varQueueName = "QUEUENAME" // set by app_queue (setqueuevar=yes)
)

// errNoCall means the target has no live, answered call.
var errNoCall = errors.New("target has no live call")

// resolveCaller names the user behind channel ch: CALLWARDEN_USER when the
// dialplan set it, else the channel's endpoint matched against identities
// (PJSIP/1001-0000002a -> PJSIP/1001), else its caller id number. It
// returns "" when nothing matches (the engine then denies unknown_user).
func (a *Adapter) resolveCaller(ctx context.Context, snap *enforce.Snapshot, ch ari.ChannelData) (string, error) {
	v, err := a.rest.getVar(ctx, ch.ID, varUser)
	switch {
	case err == nil && v != "":
		return v, nil
	case err != nil && !errors.Is(err, ErrNotFound):
		return "", fmt.Errorf("read %s: %w", varUser, err)
	}
	return resolveChannelUser(snap, ch, true), nil
}

// resolveChannelUser matches a channel to a user by its name and, when
// byCaller, by its caller id number.
func resolveChannelUser(snap *enforce.Snapshot, ch ari.ChannelData, byCaller bool) string {
	if u, ok := snap.ResolveIdentity(ch.Name); ok {
		return u
	}
	if byCaller && ch.Caller != nil && ch.Caller.Number != "" {
		if u, ok := snap.ResolveIdentity(ch.Caller.Number); ok {
			return u
		}
	}
	return ""
}

// call is a target's live call as callwarden sees it.
type call struct {
	agent  ari.ChannelData  // the target's channel: snoops attach here
	peer   *ari.ChannelData // the channel bridged with it (the customer), if any
	queue  string
	caller string // the customer's number, unmasked
}

// findCall finds the live, answered channel of user (a user id) other than
// exclude, preferring one bridged with another party, and reads the call's
// queue from CALLWARDEN_QUEUE or QUEUENAME on it or its peer.
func (a *Adapter) findCall(ctx context.Context, snap *enforce.Snapshot, user, exclude string) (call, error) {
	chans, err := a.rest.channels(ctx)
	if err != nil {
		return call{}, fmt.Errorf("list channels: %w", err)
	}
	bridges, err := a.rest.bridges(ctx)
	if err != nil {
		return call{}, fmt.Errorf("list bridges: %w", err)
	}
	c, ok := pickCall(snap, user, exclude, chans, bridges)
	if !ok {
		return call{}, errNoCall
	}
	c.queue, err = a.callQueue(ctx, c)
	if err != nil {
		return call{}, err
	}
	return c, nil
}

// pickCall is findCall's pure part: which channel of chans is user's call.
func pickCall(snap *enforce.Snapshot, user, exclude string, chans []ari.ChannelData, bridges []ari.BridgeData) (call, bool) {
	byID := make(map[string]int, len(chans))
	for i := range chans {
		byID[chans[i].ID] = i
	}
	bridgeOf := make(map[string]*ari.BridgeData)
	for i := range bridges {
		for _, id := range bridges[i].ChannelIDs {
			bridgeOf[id] = &bridges[i]
		}
	}
	var cands []int
	for i := range chans {
		ch := &chans[i]
		if ch.ID == exclude || ch.State != "Up" || isSnoop(ch.Name) {
			continue
		}
		if resolveChannelUser(snap, *ch, false) == user {
			cands = append(cands, i)
		}
	}
	if len(cands) == 0 {
		return call{}, false
	}
	sort.SliceStable(cands, func(x, y int) bool { return chans[cands[x]].Name < chans[cands[y]].Name })
	peerOf := func(i int) *ari.ChannelData {
		b := bridgeOf[chans[i].ID]
		if b == nil {
			return nil
		}
		for _, id := range b.ChannelIDs {
			if id == chans[i].ID {
				continue
			}
			if j, ok := byID[id]; ok && !isSnoop(chans[j].Name) {
				return &chans[j]
			}
		}
		return nil
	}
	best := cands[0]
	var peer *ari.ChannelData
	for _, i := range cands {
		if p := peerOf(i); p != nil {
			best, peer = i, p
			break
		}
	}
	c := call{agent: chans[best], peer: peer}
	switch {
	case peer != nil && peer.Caller != nil:
		c.caller = peer.Caller.Number
	case c.agent.Connected != nil:
		c.caller = c.agent.Connected.Number
	}
	return c, true
}

// callQueue reads the call's queue: CALLWARDEN_QUEUE or QUEUENAME on the
// agent's channel, else QUEUENAME or CALLWARDEN_QUEUE on its peer; "" for a
// direct call.
func (a *Adapter) callQueue(ctx context.Context, c call) (string, error) {
	type probe struct{ ch, name string }
	probes := []probe{{c.agent.ID, varQueue}, {c.agent.ID, varQueueName}}
	if c.peer != nil {
		probes = append(probes, probe{c.peer.ID, varQueueName}, probe{c.peer.ID, varQueue})
	}
	for _, p := range probes {
		v, err := a.rest.getVar(ctx, p.ch, p.name)
		switch {
		case err == nil && strings.TrimSpace(v) != "":
			return strings.TrimSpace(v), nil
		case err != nil && !errors.Is(err, ErrNotFound):
			return "", fmt.Errorf("read %s on %s: %w", p.name, p.ch, err)
		}
	}
	return "", nil
}

// resolveTarget turns a Stasis target argument (a user id or an extension
// or identity) into a user id.
func resolveTarget(snap *enforce.Snapshot, target string) (string, bool) {
	return snap.ResolveIdentity(target)
}

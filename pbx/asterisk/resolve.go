package asterisk

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

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
// CALLWARDEN_USER is read from ch's snapshot when ari.conf channelvars
// makes Asterisk carry it there, else with a REST call.
func (a *Adapter) resolveCaller(ctx context.Context, snap *enforce.Snapshot, ch ari.ChannelData) (string, error) {
	v, ok := channelVar(ch, varUser)
	if !ok {
		var err error
		v, err = a.rest.getVar(ctx, ch.ID, varUser)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return "", fmt.Errorf("read %s: %w", varUser, err)
		}
	}
	if v != "" {
		return v, nil
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
// queue from CALLWARDEN_QUEUE or QUEUENAME on it or its peer. It looks the
// user's channels up in the model of the PBX when the model is synced, and
// lists every channel and bridge of the PBX when it is not (before the
// first resync, or after the event connection dropped until the next one
// ends): a gap in the events must never let it decide on a call that ended.
func (a *Adapter) findCall(ctx context.Context, snap *enforce.Snapshot, user, exclude string) (call, error) {
	c, found, synced := a.model.call(snap, user, exclude)
	if synced {
		a.m.lookups.WithLabelValues("model").Inc()
	} else {
		a.m.lookups.WithLabelValues("rest").Inc()
		var err error
		if c, found, err = a.listCall(ctx, snap, user, exclude); err != nil {
			return call{}, err
		}
	}
	if !found {
		return call{}, errNoCall
	}
	var err error
	c.queue, err = a.callQueue(ctx, c)
	if err != nil {
		return call{}, err
	}
	return c, nil
}

// listCall is findCall on a listing of the PBX: every channel and bridge,
// listed concurrently.
func (a *Adapter) listCall(ctx context.Context, snap *enforce.Snapshot, user, exclude string) (call, bool, error) {
	chans, bridges, err := a.listPBX(ctx)
	if err != nil {
		return call{}, false, err
	}
	c, ok := pickCall(snap, user, exclude, chans, bridges)
	return c, ok, nil
}

// listPBX lists every channel and every bridge of the PBX, concurrently.
func (a *Adapter) listPBX(ctx context.Context) ([]ari.ChannelData, []ari.BridgeData, error) {
	var bridges []ari.BridgeData
	var berr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		bridges, berr = a.rest.bridges(ctx)
	}()
	chans, err := a.rest.channels(ctx)
	<-done
	if err != nil {
		return nil, nil, fmt.Errorf("list channels: %w", err)
	}
	if berr != nil {
		return nil, nil, fmt.Errorf("list bridges: %w", berr)
	}
	return chans, bridges, nil
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
// direct call. A variable the channel snapshots carry (ari.conf
// channelvars) is read from them; the others are read with REST calls, all
// at once, then taken in that order.
func (a *Adapter) callQueue(ctx context.Context, c call) (string, error) {
	type probe struct {
		ch    ari.ChannelData
		name  string
		val   string
		err   error
		known bool
	}
	probes := []probe{{ch: c.agent, name: varQueue}, {ch: c.agent, name: varQueueName}}
	if c.peer != nil {
		probes = append(probes, probe{ch: *c.peer, name: varQueueName}, probe{ch: *c.peer, name: varQueue})
	}
	var wg sync.WaitGroup
	for i := range probes {
		p := &probes[i]
		if p.val, p.known = channelVar(p.ch, p.name); p.known {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.val, p.err = a.rest.getVar(ctx, p.ch.ID, p.name)
		}()
	}
	wg.Wait()
	for _, p := range probes {
		switch {
		case p.err == nil && strings.TrimSpace(p.val) != "":
			return strings.TrimSpace(p.val), nil
		case p.err != nil && !errors.Is(p.err, ErrNotFound):
			return "", fmt.Errorf("read %s on %s: %w", p.name, p.ch.ID, p.err)
		}
	}
	return "", nil
}

// currentQueue reads the queue of a call found earlier as it is now: from
// the model when it is synced (a ChannelVarset is applied to it before it
// is routed), else with REST calls, never from the snapshots the call was
// found with.
func (a *Adapter) currentQueue(ctx context.Context, c call) (string, error) {
	refresh := func(ch ari.ChannelData) ari.ChannelData {
		if now, ok := a.model.channel(ch.ID); ok {
			return now
		}
		ch.ChannelVars = nil
		return ch
	}
	c.agent = refresh(c.agent)
	if c.peer != nil {
		p := refresh(*c.peer)
		c.peer = &p
	}
	return a.callQueue(ctx, c)
}

// resolveTarget turns a Stasis target argument (a user id or an extension
// or identity) into a user id.
func resolveTarget(snap *enforce.Snapshot, target string) (string, bool) {
	return snap.ResolveIdentity(target)
}

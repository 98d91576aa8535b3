package asterisk

import (
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/CyCoreSystems/ari/v5"

	"github.com/callwarden/callwarden/enforce"
)

// pbxModel is the adapter's picture of the PBX's live channels and
// bridges, kept from the event stream so that a request finds the target's
// call with a map lookup instead of listing every channel of the PBX.
//
// The event loop applies every event to the model synchronously, before
// dispatching it, so a StasisStart is handled only once every earlier
// event is in the model. The model is trusted only while synced: from the
// end of the listing that follows every (re)connection until the
// connection drops. Callers must fall back to listing the PBX while it is
// not synced, never decide on what it held before a gap in the stream.
type pbxModel struct {
	mu     sync.RWMutex
	synced bool
	// listing says a resync's listing is under way: events may then
	// bring in channels and bridges the model does not know yet, and
	// destroyed ids are remembered in tombs so the listing, older than
	// them, cannot bring them back.
	listing bool
	tombs   map[string]struct{}

	chans   map[string]*modelChannel
	bridges map[string][]string // bridge id -> member channel ids
	// byEndpoint indexes channels by endpoint, their name without the
	// "-xxxxxxxx" suffix (PJSIP/1001-0000002a -> PJSIP/1001), the way
	// enforce.Snapshot.ResolveIdentity matches a channel to a user.
	byEndpoint map[string][]*modelChannel

	// tracked reports the number of channels after every change (a gauge).
	tracked func(n int)
	// missed says an event was lost (undecodable) since the last resync
	// began: the event loop resyncs.
	missed bool
}

// modelChannel is what the model keeps of one channel: what a decision
// reads, nothing else, so that 10,000 channels stay a few megabytes.
type modelChannel struct {
	id, name, state   string
	caller, connected string
	bridge            string // the bridge it is in, "" when none
	vars              contractVars
}

// contractVars are the dialplan-contract variables of a channel, as the
// channel snapshots of events and listings carry them when ari.conf's
// channelvars names them. known has bit i set when vals[i] was carried:
// a variable the snapshots do not carry must be read with getVar.
type contractVars struct {
	vals  [len(contractVarNames)]string
	known uint8
}

// contractVarNames are the variables a channel snapshot may carry that
// callwarden reads, in the order of contractVars.vals.
var contractVarNames = [...]string{varUser, varQueue, varQueueName}

// contractVarIndex returns the index of variable name (leading '_' of an
// inherited variable ignored) in contractVarNames, or -1.
func contractVarIndex(name string) int {
	name = strings.TrimLeft(name, "_")
	for i, n := range contractVarNames {
		if n == name {
			return i
		}
	}
	return -1
}

// lookup returns the variable's value and whether the snapshots carry it.
func (v contractVars) lookup(name string) (string, bool) {
	i := contractVarIndex(name)
	if i < 0 || v.known&(1<<i) == 0 {
		return "", false
	}
	return v.vals[i], true
}

// varsOf reads the contract variables a channel snapshot carries.
func varsOf(m map[string]string) contractVars {
	var v contractVars
	for i, n := range contractVarNames {
		if val, ok := m[n]; ok {
			v.vals[i] = val
			v.known |= 1 << i
		}
	}
	return v
}

// channelVars turns v back into a channelvars map (nil when nothing is
// known), the form ari.ChannelData carries.
func (v contractVars) channelVars() map[string]string {
	if v.known == 0 {
		return nil
	}
	m := make(map[string]string, len(contractVarNames))
	for i, n := range contractVarNames {
		if v.known&(1<<i) != 0 {
			m[n] = v.vals[i]
		}
	}
	return m
}

// channelVar reads a contract variable from a channel snapshot's
// channelvars; ok is false when the snapshot does not carry it.
func channelVar(ch ari.ChannelData, name string) (string, bool) {
	v, ok := ch.ChannelVars[name]
	return v, ok
}

func newPBXModel(tracked func(int)) *pbxModel {
	if tracked == nil {
		tracked = func(int) {}
	}
	return &pbxModel{
		chans:      make(map[string]*modelChannel),
		bridges:    make(map[string][]string),
		byEndpoint: make(map[string][]*modelChannel),
		tracked:    tracked,
	}
}

// endpointOf is the channel name without its unique suffix, exactly as
// enforce.Snapshot.ResolveIdentity cuts it; a name it does not cut is its
// own endpoint.
func endpointOf(name string) string {
	if strings.IndexByte(name, '/') >= 0 {
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			return name[:i]
		}
	}
	return name
}

// internState returns the usual channel states as constants, so that
// 10,000 channels do not keep 10,000 copies of "Up".
func internState(s string) string {
	for _, known := range [...]string{"Up", "Down", "Ring", "Ringing", "Rsrved", "OffHook", "Dialing", "Busy", "Pre-ring", "Unknown"} {
		if s == known {
			return known
		}
	}
	return s
}

// apply changes the model by one event. Outside a listing only
// ChannelCreated and BridgeCreated bring in new entities: a late event of
// a channel already destroyed must not bring it back.
func (m *pbxModel) apply(ev ari.Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch e := ev.(type) {
	case *ari.ChannelCreated:
		m.upsertChannel(e.Channel, true)
	case *ari.ChannelDestroyed:
		m.removeChannel(e.Channel.ID)
	case *ari.StasisStart:
		m.upsertChannel(e.Channel, m.listing)
	case *ari.StasisEnd:
		m.upsertChannel(e.Channel, m.listing)
	case *ari.ChannelStateChange:
		m.upsertChannel(e.Channel, m.listing)
	case *ari.ChannelConnectedLine:
		m.upsertChannel(e.Channel, m.listing)
	case *ari.ChannelCallerID:
		m.upsertChannel(e.Channel, m.listing)
	case *ari.ChannelDialplan:
		m.upsertChannel(e.Channel, m.listing)
	case *ari.ChannelHangupRequest:
		m.upsertChannel(e.Channel, m.listing)
	case *ari.ChannelVarset:
		if e.Channel.ID == "" {
			return // a global variable
		}
		c := m.upsertChannel(e.Channel, m.listing)
		// The event's snapshot may predate the change it announces.
		if i := contractVarIndex(e.Variable); c != nil && i >= 0 && c.vars.known&(1<<i) != 0 {
			c.vars.vals[i] = e.Value
		}
	case *ari.BridgeCreated:
		m.setBridge(e.Bridge, true)
	case *ari.BridgeDestroyed:
		m.removeBridge(e.Bridge.ID)
	case *ari.BridgeMerged:
		m.setBridge(e.BridgeFrom, false)
		m.setBridge(e.Bridge, m.listing)
	case *ari.ChannelEnteredBridge:
		m.upsertChannel(e.Channel, m.listing)
		members := e.Bridge.ChannelIDs
		if !slices.Contains(members, e.Channel.ID) {
			members = append(slices.Clip(members), e.Channel.ID)
		}
		e.Bridge.ChannelIDs = members
		m.setBridge(e.Bridge, m.listing)
	case *ari.ChannelLeftBridge:
		m.upsertChannel(e.Channel, m.listing)
		e.Bridge.ChannelIDs = slices.DeleteFunc(slices.Clone(e.Bridge.ChannelIDs), func(id string) bool { return id == e.Channel.ID })
		m.setBridge(e.Bridge, m.listing)
	}
}

// upsertChannel writes ch's snapshot into the model; it creates the
// channel only when create is set, and never one destroyed during the
// current listing. It returns the channel, nil when not kept.
func (m *pbxModel) upsertChannel(ch ari.ChannelData, create bool) *modelChannel {
	if ch.ID == "" {
		return nil
	}
	c, ok := m.chans[ch.ID]
	if !ok {
		if _, dead := m.tombs[ch.ID]; !create || dead {
			return nil
		}
		c = &modelChannel{id: ch.ID}
		m.chans[ch.ID] = c
		m.tracked(len(m.chans))
	}
	if c.name != ch.Name {
		if c.name != "" {
			m.unindex(c)
		}
		c.name = ch.Name
		ep := endpointOf(c.name)
		m.byEndpoint[ep] = append(m.byEndpoint[ep], c)
	}
	c.state = internState(ch.State)
	c.caller, c.connected = "", ""
	if ch.Caller != nil {
		c.caller = ch.Caller.Number
	}
	if ch.Connected != nil {
		c.connected = ch.Connected.Number
	}
	c.vars = varsOf(ch.ChannelVars)
	return c
}

func (m *pbxModel) unindex(c *modelChannel) {
	ep := endpointOf(c.name)
	rest := slices.DeleteFunc(m.byEndpoint[ep], func(x *modelChannel) bool { return x == c })
	if len(rest) == 0 {
		delete(m.byEndpoint, ep)
	} else {
		m.byEndpoint[ep] = rest
	}
}

func (m *pbxModel) removeChannel(id string) {
	if m.listing {
		m.tombs[id] = struct{}{}
	}
	c, ok := m.chans[id]
	if !ok {
		return
	}
	delete(m.chans, id)
	m.unindex(c)
	if c.bridge != "" {
		members := slices.DeleteFunc(m.bridges[c.bridge], func(x string) bool { return x == id })
		if _, ok := m.bridges[c.bridge]; ok {
			m.bridges[c.bridge] = members
		}
	}
	m.tracked(len(m.chans))
}

// setBridge writes b's member list into the model, creating the bridge
// only when create is set and it was not destroyed during the listing.
func (m *pbxModel) setBridge(b ari.BridgeData, create bool) {
	if b.ID == "" {
		return
	}
	old, ok := m.bridges[b.ID]
	if !ok {
		if _, dead := m.tombs[b.ID]; !create || dead {
			return
		}
	}
	for _, id := range old {
		if c := m.chans[id]; c != nil && c.bridge == b.ID {
			c.bridge = ""
		}
	}
	members := slices.Clone(b.ChannelIDs)
	for _, id := range members {
		if c := m.chans[id]; c != nil {
			c.bridge = b.ID
		}
	}
	m.bridges[b.ID] = members
}

func (m *pbxModel) removeBridge(id string) {
	if m.listing {
		m.tombs[id] = struct{}{}
	}
	for _, ch := range m.bridges[id] {
		if c := m.chans[ch]; c != nil && c.bridge == id {
			c.bridge = ""
		}
	}
	delete(m.bridges, id)
}

// beginResync forgets everything (it may be stale after a gap in the
// stream), marks the model unsynced and starts remembering what events
// destroy. Call it from the event loop before the listing starts: events
// applied from then on are newer than the listing or as new.
func (m *pbxModel) beginResync() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.synced, m.missed = false, false
	m.listing = true
	m.tombs = make(map[string]struct{})
	clear(m.chans)
	clear(m.bridges)
	clear(m.byEndpoint)
	m.tracked(0)
}

// finishResync merges a listing made after beginResync into the model and
// marks it synced. What events brought in since beginResync wins over the
// listing, and nothing they destroyed comes back.
func (m *pbxModel) finishResync(chans []ari.ChannelData, bridges []ari.BridgeData) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.listing {
		return // the connection ended meanwhile: stay unsynced
	}
	for _, ch := range chans {
		if _, known := m.chans[ch.ID]; !known {
			m.upsertChannel(ch, true)
		}
	}
	for _, b := range bridges {
		if _, known := m.bridges[b.ID]; !known {
			m.setBridge(b, true)
		}
	}
	// A channel listed after an event brought its bridge in: point it at
	// the bridge now.
	for id, members := range m.bridges {
		for _, ch := range members {
			if c := m.chans[ch]; c != nil {
				c.bridge = id
			}
		}
	}
	// An event lost meanwhile may be newer than the listing: the event
	// loop lists again (lost) before the model is trusted.
	m.listing, m.tombs, m.synced = false, nil, !m.missed
}

// markLost marks the model stale because an event could not be applied;
// lost then reports it until the next resync begins.
func (m *pbxModel) markLost() {
	m.mu.Lock()
	m.synced, m.missed = false, true
	m.mu.Unlock()
}

// lost reports whether an event was lost since the last resync began.
func (m *pbxModel) lost() bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.missed
}

// unsync marks the model stale: the connection dropped and events may be
// lost until the next resync.
func (m *pbxModel) unsync() {
	m.mu.Lock()
	m.synced, m.listing, m.tombs = false, false, nil
	m.mu.Unlock()
}

// data turns a model channel back into the ari.ChannelData the decision
// code reads.
func (c *modelChannel) data() ari.ChannelData {
	d := ari.ChannelData{ID: c.id, Name: c.name, State: c.state, ChannelVars: c.vars.channelVars()}
	if c.caller != "" {
		d.Caller = &ari.CallerID{Number: c.caller}
	}
	if c.connected != "" {
		d.Connected = &ari.CallerID{Number: c.connected}
	}
	return d
}

// call finds user's live call in the model, as pickCall does in a
// listing: ok is false when the model is not synced (the caller must
// list the PBX), found is false when the user has no live call. Only the
// user's channels and their bridges are read.
func (m *pbxModel) call(snap *enforce.Snapshot, user, exclude string) (c call, found, ok bool) {
	keys := []string{user}
	if u, known := snap.User(user); known {
		keys = append(keys, u.Identities...)
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if !m.synced {
		return call{}, false, false
	}
	var chans []ari.ChannelData
	var bridges []ari.BridgeData
	seen := make(map[string]struct{})
	add := func(mc *modelChannel) {
		if _, dup := seen[mc.id]; dup {
			return
		}
		seen[mc.id] = struct{}{}
		chans = append(chans, mc.data())
	}
	for _, k := range keys {
		// An identity matches a channel of its endpoint, or one whose
		// whole name it is.
		for _, ep := range [...]string{k, endpointOf(k)} {
			for _, mc := range m.byEndpoint[ep] {
				if mc.state != "Up" || mc.id == exclude || isSnoop(mc.name) || resolveChannelUser(snap, ari.ChannelData{Name: mc.name}, false) != user {
					continue
				}
				add(mc)
				if mc.bridge == "" {
					continue
				}
				members := m.bridges[mc.bridge]
				bridges = append(bridges, ari.BridgeData{ID: mc.bridge, ChannelIDs: members})
				for _, id := range members {
					if p := m.chans[id]; p != nil {
						add(p)
					}
				}
			}
		}
	}
	c, found = pickCall(snap, user, exclude, chans, bridges)
	return c, found, true
}

// channel returns the model's view of channel id; ok is false when the
// model is not synced or does not know it.
func (m *pbxModel) channel(id string) (ari.ChannelData, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	c, known := m.chans[id]
	if !m.synced || !known {
		return ari.ChannelData{}, false
	}
	return c.data(), true
}

// bridgeOf returns the bridge channel id is in ("" when none); ok is false
// when the model is not synced or does not know the channel.
func (m *pbxModel) bridgeOf(id string) (bridge string, ok bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	c, known := m.chans[id]
	if !m.synced || !known {
		return "", false
	}
	return c.bridge, true
}

// ModelChannel is one channel of the adapter's model of the PBX.
type ModelChannel struct {
	ID, Name, State   string
	Caller, Connected string
	Bridge            string
	// Vars are the dialplan-contract variables the channel snapshots
	// carry (ari.conf channelvars); nil when they carry none.
	Vars map[string]string
}

// ModelBridge is one bridge of the adapter's model of the PBX.
type ModelBridge struct {
	ID       string
	Channels []string // sorted
}

// ModelView is a copy of the adapter's model of the PBX, sorted by id.
type ModelView struct {
	Synced   bool
	Channels []ModelChannel
	Bridges  []ModelBridge
}

// view copies the model.
func (m *pbxModel) view() ModelView {
	m.mu.RLock()
	defer m.mu.RUnlock()
	v := ModelView{Synced: m.synced, Channels: make([]ModelChannel, 0, len(m.chans)), Bridges: make([]ModelBridge, 0, len(m.bridges))}
	for _, c := range m.chans {
		v.Channels = append(v.Channels, ModelChannel{ID: c.id, Name: c.name, State: c.state, Caller: c.caller,
			Connected: c.connected, Bridge: c.bridge, Vars: c.vars.channelVars()})
	}
	for id, members := range m.bridges {
		v.Bridges = append(v.Bridges, ModelBridge{ID: id, Channels: slices.Sorted(slices.Values(members))})
	}
	sort.Slice(v.Channels, func(i, j int) bool { return v.Channels[i].ID < v.Channels[j].ID })
	sort.Slice(v.Bridges, func(i, j int) bool { return v.Bridges[i].ID < v.Bridges[j].ID })
	return v
}

// Model returns a copy of the adapter's model of the PBX's live channels
// and bridges, for tests and diagnostics. It is read-only: nothing a
// caller does to it reaches the adapter.
func (a *Adapter) Model() ModelView { return a.model.view() }

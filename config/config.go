package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/callwarden/callwarden/enforce"
)

// Config is the daemon configuration. Precedence is flags > CALLWARDEN_*
// environment > YAML file > Default(); cmd applies them in that order
// (LoadFile, then ApplyEnv, then its flags, then Validate).
type Config struct {
	// Profiles are profiles files served when no store is configured.
	Profiles []string `yaml:"profiles"`
	HTTP     HTTP     `yaml:"http"`
	Log      Log      `yaml:"log"`
	// Asterisk and Redis are filled in by later subsystems; zero means off.
	Asterisk Asterisk `yaml:"asterisk"`
	// FreeSWITCH turns the ESL adapter on when its esl_address is set.
	FreeSWITCH FreeSWITCH `yaml:"freeswitch"`
	Redis      Redis      `yaml:"redis"`
	// Admin configures the admin API's bearer tokens; none means every
	// admin request is refused (401).
	Admin Admin `yaml:"admin"`
	// Audit sizes the asynchronous writer of decision records (Redis
	// mode).
	Audit Audit `yaml:"audit"`
	// Recordings configures the recording catalogue's upkeep: retention
	// and the cataloguing of the PBX's other recordings.
	Recordings Recordings `yaml:"recordings"`
}

// Recordings configures the background upkeep of the recording
// catalogue.
type Recordings struct {
	// Retain is how long a recording is kept after it started, as a Go
	// duration or days ("90d"); "" keeps recordings forever. Expired
	// recordings are deleted from the PBX and the catalogue, audited.
	Retain string `yaml:"retain"`
	// SweepInterval is how often expired recordings are looked for
	// (default 1m); SweepBatch the most deleted per sweep (default 100).
	SweepInterval time.Duration `yaml:"sweep_interval"`
	SweepBatch    int           `yaml:"sweep_batch"`
	// ImportForeign catalogues the recordings the PBX stores that
	// callwarden did not start, marked foreign, each sweep.
	ImportForeign bool `yaml:"import_foreign"`
}

// RetainFor is Retain as a duration, 0 when recordings are kept forever
// (Validate has checked it).
func (r Recordings) RetainFor() time.Duration {
	if r.Retain == "" {
		return 0
	}
	d, _ := parseDuration(r.Retain)
	return d
}

// Audit sizes the daemon's asynchronous decision audit writer. Decisions
// wait in two lanes, each with its own bound, so HTTP checks can never
// take the room the PBX adapters need: a PBX decision whose record cannot
// be queued is refused (audit_unavailable).
type Audit struct {
	// HTTPQueueSize bounds the /v1/check records waiting to be written
	// (default 8192); past it they are dropped and counted.
	HTTPQueueSize int `yaml:"http_queue_size"`
	// PBXQueueSize bounds the PBX adapters' records waiting to be written
	// (default 2048). The writer drains this lane first.
	PBXQueueSize int `yaml:"pbx_queue_size"`
	// BatchSize is the most records written per round trip (default 256).
	BatchSize int `yaml:"batch_size"`
	// PBXDropUnreadyFor is how long /readyz answers 503 after a PBX-lane
	// record was dropped (default 30s).
	PBXDropUnreadyFor time.Duration `yaml:"pbx_drop_unready_for"`
}

// maxAuditQueue bounds the audit lanes' sizes: a record is about 1 kB, so
// a lane holds at most about 4 GB.
const maxAuditQueue = 1 << 22

// Admin configures who may call the admin API. Only SHA-256 hashes of the
// tokens are configured (`callwarden token hash` prints one), so the
// config file does not hold credentials; the API compares hashes in
// constant time.
type Admin struct {
	Tokens []AdminToken `yaml:"tokens"`
	// TokensFile is a YAML file holding more tokens (`tokens: [...]`, the
	// same entries), kept apart from the config, e.g. a mounted secret.
	TokensFile string `yaml:"tokens_file"`
}

// AdminToken maps one token, by the hex SHA-256 of its value, to what it
// may do. An admin token (role admin, the default) names the user whose
// profile decides what it may do in the admin API; a check token (role
// check) is named for the audit trail and may only call /v1/check.
type AdminToken struct {
	User   string `yaml:"user,omitempty"`
	Name   string `yaml:"name,omitempty"`
	Role   string `yaml:"role,omitempty"`
	SHA256 string `yaml:"sha256"`
}

// The token roles.
const (
	TokenRoleAdmin = "admin"
	TokenRoleCheck = "check"
)

// checkTokens returns the problems of a list of tokens, each named by
// field (the YAML path of the list is prefix).
func checkTokens(prefix string, tokens []AdminToken) []error {
	var errs []error
	for i, t := range tokens {
		f := fmt.Sprintf("%s[%d]", prefix, i)
		switch t.Role {
		case "", TokenRoleAdmin:
			if strings.TrimSpace(t.User) == "" {
				errs = append(errs, fmt.Errorf("%s.user: required for an admin token", f))
			}
			if t.Name != "" {
				errs = append(errs, fmt.Errorf("%s.name: only for a check token (an admin token is named by its user)", f))
			}
		case TokenRoleCheck:
			if strings.TrimSpace(t.Name) == "" {
				errs = append(errs, fmt.Errorf("%s.name: required for a check token", f))
			}
			if t.User != "" {
				errs = append(errs, fmt.Errorf("%s.user: a check token acts for no user; name it with name", f))
			}
		default:
			errs = append(errs, fmt.Errorf("%s.role: unknown role %q (want admin or check)", f, t.Role))
		}
		if b, err := hex.DecodeString(t.SHA256); err != nil || len(b) != sha256.Size {
			errs = append(errs, fmt.Errorf("%s.sha256: want %d hex digits (the output of `callwarden token hash`)", f, 2*sha256.Size))
		}
	}
	return errs
}

// LoadTokensFile reads an admin tokens file: a YAML document
// `tokens: [{user: alice, sha256: <hex>}]`. Unknown fields and invalid
// entries are errors naming the file.
func LoadTokensFile(path string) ([]AdminToken, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load tokens: %w", err)
	}
	var doc struct {
		Tokens []AdminToken `yaml:"tokens"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("load tokens %s: %w", path, err)
	}
	if errs := checkTokens("tokens", doc.Tokens); len(errs) > 0 {
		return nil, fmt.Errorf("load tokens %s: %w", path, errors.Join(errs...))
	}
	return doc.Tokens, nil
}

// HTTP configures the check API, health and metrics endpoints.
type HTTP struct {
	Listen          string        `yaml:"listen"`           // default ":8080"
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"` // default 10s
	ReadTimeout     time.Duration `yaml:"read_timeout"`     // default 5s
	// CheckAuth says who may call /v1/check: "token" (default) needs a
	// check token; "none-on-loopback" also answers tokenless checks from
	// a loopback peer, and is accepted only when Listen is a loopback
	// address.
	CheckAuth string `yaml:"check_auth"`
	// CheckRate and CheckBurst bound the checks of one token (or of the
	// loopback PBX) per second; default 200/s, burst 400.
	CheckRate  float64 `yaml:"check_rate"`
	CheckBurst int     `yaml:"check_burst"`
}

// The http.check_auth modes.
const (
	CheckAuthToken    = "token"
	CheckAuthLoopback = "none-on-loopback"
)

// Log configures the zap logger.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error; default info
	Format string `yaml:"format"` // json or console; default json
}

// Asterisk configures the ARI adapter. An empty URL turns it off.
type Asterisk struct {
	URL          string        `yaml:"url"`           // e.g. http://127.0.0.1:8088/ari
	WebsocketURL string        `yaml:"websocket_url"` // derived from URL when empty
	User         string        `yaml:"user"`
	Password     Secret        `yaml:"password"`
	App          string        `yaml:"app"`     // default "callwarden"
	Timeout      time.Duration `yaml:"timeout"` // per REST call; default 2s
	// Watchdog is what happens to a ChanSpy, ExtenSpy, MixMonitor or
	// foreign snoop that callwarden did not allow: "enforce" (default)
	// hangs it up and audits it, "report-only" only audits it, "off" does
	// not watch.
	Watchdog string `yaml:"watchdog"`
	// RefusalSound is played to a refused requester (default
	// "sound:ss-noservice"); NotifySound to a monitored agent whose
	// supervisor's profile says notify_target, and as a confirmation of a
	// record operation (default "sound:beep"). Any ARI media URI.
	RefusalSound string `yaml:"refusal_sound"`
	NotifySound  string `yaml:"notify_sound"`
	// PBX names this Asterisk in audit records (`pbx`, and `asked_by` as
	// "asterisk:<PBX>"), so that several PBXs sharing one Redis can be told
	// apart. Default "asterisk"; it must be an id (enforce.CheckID).
	PBX string `yaml:"pbx"`
	// Siblings are the Stasis applications of the other callwarden
	// daemons on this Asterisk (deploy/production: callwarden-b in
	// callwarden-a's config and the reverse). Their snoops are not
	// bypasses; the daemons share the watchdog lease of PBX and the
	// checks' allowances in Redis, so that one watchdog acts at a time.
	// Needs redis; every daemon of the PBX must name the same PBX.
	Siblings []string `yaml:"siblings"`
}

// FreeSWITCH configures the ESL adapter (every verb and the watchdog,
// docs/freeswitch.md). An empty ESLAddress turns it off. Zero values
// take the adapter's defaults: outbound_listen 127.0.0.1:8084, pbx
// "freeswitch", timeout 2s.
type FreeSWITCH struct {
	ESLAddress  string `yaml:"esl_address"`  // host:port of the event socket, e.g. 127.0.0.1:8021
	ESLPassword Secret `yaml:"esl_password"` // event_socket.conf.xml's password
	// OutboundListen is where the dialplan's socket application connects
	// (default 127.0.0.1:8084).
	OutboundListen string `yaml:"outbound_listen"`
	// PBX names this FreeSWITCH in audit records (`pbx`, and `asked_by`
	// as "freeswitch:<PBX>"). Default "freeswitch"; it must be an id.
	PBX string `yaml:"pbx"`
	// Timeout bounds every ESL command, the dial and the auth (default 2s).
	Timeout time.Duration `yaml:"timeout"`
	// Watchdog is what happens to an eavesdrop, record_session or
	// uuid_record started without an allowing decision: enforce (the
	// default when empty), report-only or off.
	Watchdog string `yaml:"watchdog"`
	// RecordingsDir is the directory, on the FreeSWITCH host, where the
	// record verb's uuid_record writes (default
	// /usr/local/freeswitch/recordings, FreeSWITCH's $${recordings_dir}
	// in a source install): an absolute path without spaces.
	RecordingsDir string `yaml:"recordings_dir"`
	// RecordingsLocalDir is where this daemon sees RecordingsDir (a shared
	// volume); set, the admin API serves and deletes FreeSWITCH recordings'
	// audio from it. ESL cannot carry a file.
	RecordingsLocalDir string `yaml:"recordings_local_dir"`
	// WatchdogLease makes the daemons of this FreeSWITCH (same PBX name)
	// share one watchdog: a lease and every allowance in Redis, so that
	// one daemon's checks and sessions are not stopped by another's
	// watchdog. Needs redis. Off: this daemon's watchdog acts alone.
	WatchdogLease bool `yaml:"watchdog_lease"`
}

// The Asterisk watchdog modes.
const (
	WatchdogEnforce    = "enforce"
	WatchdogReportOnly = "report-only"
	WatchdogOff        = "off"
)

// Redis configures the shared store. No Addrs turns it off. Addrs are
// host:port (several for Cluster, Sentinels with MasterName), or a single
// redis://[user[:password]@]host[:port][/db] URL (rediss:// for TLS) whose
// credentials then need not be set apart; Conn takes it apart. The
// config prints with URL passwords redacted.
type Redis struct {
	Addrs      []string      `yaml:"addrs"`
	MasterName string        `yaml:"master_name"`
	Username   string        `yaml:"username"`
	Password   Secret        `yaml:"password"`
	Prefix     string        `yaml:"prefix"`    // default "callwarden:"
	Staleness  time.Duration `yaml:"staleness"` // default 30s
	// WaitReplicas, when positive, acknowledges an admin write (policy
	// apply or change, token, audit append) only once that many replicas
	// have it (WAIT), within WaitTimeout: a failover of the primary cannot
	// then lose an acknowledged write. Set it to 1 with Sentinel, and with
	// a Cluster whose primaries have replicas (docs/redis.md, "High
	// availability").
	WaitReplicas int           `yaml:"wait_replicas"` // default 0 (off)
	WaitTimeout  time.Duration `yaml:"wait_timeout"`  // default 1s
}

// secretMask is what a set Secret prints as.
const secretMask = "******"

// Secret is a string that never prints its value: fmt (every verb,
// including %#v), YAML and JSON all render it as "******" so a config can
// be logged or dumped safely. Use Reveal where the value is really needed.
type Secret string

// String hides the secret; an unset secret prints as "".
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return secretMask
}

// GoString hides the secret from %#v.
func (s Secret) GoString() string { return strconv.Quote(s.String()) }

// Format hides the secret from every fmt verb.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		_, _ = io.WriteString(f, s.GoString())
		return
	}
	_, _ = io.WriteString(f, s.String())
}

// MarshalYAML hides the secret when a config is written back.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// MarshalJSON hides the secret from JSON output, including zap's reflected
// fields.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(strconv.Quote(s.String())), nil }

// Reveal returns the secret's value, for the one call that sends it.
func (s Secret) Reveal() string { return string(s) }

// Default returns the configuration with every default set.
func Default() Config {
	return Config{
		HTTP: HTTP{
			Listen:          ":8080",
			ShutdownTimeout: 10 * time.Second,
			ReadTimeout:     5 * time.Second,
			CheckAuth:       CheckAuthToken,
			CheckRate:       200,
			CheckBurst:      400,
		},
		Log: Log{Level: "info", Format: "json"},
		Asterisk: Asterisk{
			App:          "callwarden",
			Timeout:      2 * time.Second,
			Watchdog:     WatchdogEnforce,
			RefusalSound: "sound:ss-noservice",
			NotifySound:  "sound:beep",
		},
		Redis: Redis{
			Prefix:      "callwarden:",
			Staleness:   30 * time.Second,
			WaitTimeout: time.Second,
		},
		Audit: Audit{
			HTTPQueueSize:     8192,
			PBXQueueSize:      2048,
			BatchSize:         256,
			PBXDropUnreadyFor: 30 * time.Second,
		},
		Recordings: Recordings{SweepInterval: time.Minute, SweepBatch: 100},
	}
}

// Validate reports every invalid field, named by its YAML path, joined
// into one error.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	for i, p := range c.Profiles {
		if strings.TrimSpace(p) == "" {
			bad(fmt.Sprintf("profiles[%d]", i), "empty path")
		}
	}
	if msg := checkHostPort(c.HTTP.Listen); msg != "" {
		bad("http.listen", "%s", msg)
	}
	if c.HTTP.ShutdownTimeout <= 0 {
		bad("http.shutdown_timeout", "must be positive, got %s", c.HTTP.ShutdownTimeout)
	}
	if c.HTTP.ReadTimeout <= 0 {
		bad("http.read_timeout", "must be positive, got %s", c.HTTP.ReadTimeout)
	}
	switch c.HTTP.CheckAuth {
	case CheckAuthToken:
	case CheckAuthLoopback:
		// Tokenless checks are only safe when nobody but this host can
		// reach the listener; the handler also checks each peer.
		if !loopbackListen(c.HTTP.Listen) {
			bad("http.check_auth", "%s needs every HTTP listen address to be a loopback address (e.g. 127.0.0.1:8080 or [::1]:8080), but http.listen is %q; use check tokens (check_auth: token) on any other address", CheckAuthLoopback, c.HTTP.Listen)
		}
	default:
		bad("http.check_auth", "unknown mode %q (want %s or %s)", c.HTTP.CheckAuth, CheckAuthToken, CheckAuthLoopback)
	}
	if c.HTTP.CheckRate <= 0 {
		bad("http.check_rate", "must be positive (checks per second per token), got %g", c.HTTP.CheckRate)
	}
	if c.HTTP.CheckBurst < 1 {
		bad("http.check_burst", "must be at least 1, got %d", c.HTTP.CheckBurst)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "unknown level %q (want debug, info, warn or error)", c.Log.Level)
	}
	switch c.Log.Format {
	case "json", "console":
	default:
		bad("log.format", "unknown format %q (want json or console)", c.Log.Format)
	}
	if a := c.Asterisk; a.URL != "" {
		if msg := checkURL(a.URL, "http", "https"); msg != "" {
			bad("asterisk.url", "%s", msg)
		}
		if a.WebsocketURL != "" {
			if msg := checkURL(a.WebsocketURL, "ws", "wss"); msg != "" {
				bad("asterisk.websocket_url", "%s", msg)
			}
		}
		if a.User == "" {
			bad("asterisk.user", "required when asterisk.url is set")
		}
		if a.Password == "" {
			bad("asterisk.password", "required when asterisk.url is set")
		}
		if a.App == "" {
			bad("asterisk.app", "required when asterisk.url is set")
		}
		if a.Timeout <= 0 {
			bad("asterisk.timeout", "must be positive, got %s", a.Timeout)
		}
		if a.PBX != "" {
			if err := enforce.CheckID(a.PBX); err != nil {
				bad("asterisk.pbx", "%v", err)
			}
		}
		switch a.Watchdog {
		case WatchdogEnforce, WatchdogReportOnly, WatchdogOff:
		default:
			bad("asterisk.watchdog", "unknown mode %q (want enforce, report-only or off)", a.Watchdog)
		}
		if len(a.Siblings) > 0 && len(c.Redis.Addrs) == 0 {
			bad("asterisk.siblings", "needs redis: the daemons share the watchdog lease and the checks' allowances there")
		}
		for _, s := range a.Siblings {
			if s == "" || s == a.App || strings.ContainsAny(s, "/:, ") {
				bad("asterisk.siblings", "%q is not another Stasis application name", s)
			}
		}
		for field, media := range map[string]string{"asterisk.refusal_sound": a.RefusalSound, "asterisk.notify_sound": a.NotifySound} {
			if i := strings.IndexByte(media, ':'); i <= 0 || i == len(media)-1 {
				bad(field, "%q is not an ARI media URI (want e.g. sound:beep or tone:ring)", media)
			}
		}
	}
	if f := c.FreeSWITCH; f.ESLAddress != "" {
		if msg := checkHostPort(f.ESLAddress); msg != "" {
			bad("freeswitch.esl_address", "%s", msg)
		}
		if f.ESLPassword == "" {
			bad("freeswitch.esl_password", "required when freeswitch.esl_address is set")
		} else if strings.ContainsAny(f.ESLPassword.Reveal(), "\r\n\x00 ") {
			bad("freeswitch.esl_password", "must not contain spaces or control characters")
		}
		if f.OutboundListen != "" {
			if msg := checkHostPort(f.OutboundListen); msg != "" {
				bad("freeswitch.outbound_listen", "%s", msg)
			}
		}
		if f.Timeout < 0 {
			bad("freeswitch.timeout", "must be positive (0 means the default 2s), got %s", f.Timeout)
		}
		if f.PBX != "" {
			if err := enforce.CheckID(f.PBX); err != nil {
				bad("freeswitch.pbx", "%v", err)
			}
		}
		switch f.Watchdog {
		case "", WatchdogEnforce, WatchdogReportOnly, WatchdogOff:
		default:
			bad("freeswitch.watchdog", "unknown mode %q (want enforce, report-only or off)", f.Watchdog)
		}
		if d := f.RecordingsDir; d != "" && (!strings.HasPrefix(d, "/") || strings.ContainsFunc(d, func(r rune) bool { return r <= ' ' || r == 0x7f })) {
			bad("freeswitch.recordings_dir", "want an absolute path without spaces or control characters (uuid_record splits on spaces)")
		}
		if f.WatchdogLease && len(c.Redis.Addrs) == 0 {
			bad("freeswitch.watchdog_lease", "needs redis: the daemons share the watchdog lease and the allowances there")
		}
	}
	// Conn's errors name their field and never print a password.
	if _, err := c.Redis.Conn(); err != nil {
		errs = append(errs, err)
	}
	if c.Redis.Staleness <= 0 {
		bad("redis.staleness", "must be positive, got %s", c.Redis.Staleness)
	}
	if c.Redis.Prefix == "" {
		bad("redis.prefix", "required")
	}
	if c.Redis.WaitReplicas < 0 {
		bad("redis.wait_replicas", "must not be negative, got %d", c.Redis.WaitReplicas)
	}
	if c.Redis.WaitReplicas > 0 && c.Redis.WaitTimeout <= 0 {
		bad("redis.wait_timeout", "must be positive when redis.wait_replicas is set, got %s", c.Redis.WaitTimeout)
	}
	for field, n := range map[string]int{"audit.http_queue_size": c.Audit.HTTPQueueSize, "audit.pbx_queue_size": c.Audit.PBXQueueSize} {
		if n < 1 || n > maxAuditQueue {
			bad(field, "must be between 1 and %d, got %d", maxAuditQueue, n)
		}
	}
	if n := c.Audit.BatchSize; n < 1 || n > 4096 {
		bad("audit.batch_size", "must be between 1 and 4096, got %d", n)
	}
	if c.Audit.PBXDropUnreadyFor <= 0 {
		bad("audit.pbx_drop_unready_for", "must be positive, got %s", c.Audit.PBXDropUnreadyFor)
	}
	if r := c.Recordings.Retain; r != "" {
		if _, err := parseDuration(r); err != nil {
			bad("recordings.retain", "%s", err)
		}
	}
	if c.Recordings.SweepInterval <= 0 {
		bad("recordings.sweep_interval", "must be positive, got %s", c.Recordings.SweepInterval)
	}
	if n := c.Recordings.SweepBatch; n < 1 || n > 10000 {
		bad("recordings.sweep_batch", "must be between 1 and 10000, got %d", n)
	}
	errs = append(errs, checkTokens("admin.tokens", c.Admin.Tokens)...)
	if c.Admin.TokensFile != "" && strings.TrimSpace(c.Admin.TokensFile) == "" {
		bad("admin.tokens_file", "empty path")
	}
	return errors.Join(errs...)
}

// loopbackListen reports whether a listen address binds loopback only:
// its host is a loopback IP literal. A name (even "localhost") or an empty
// host (every interface) is not, since what it binds is not known here.
func loopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkHostPort returns what is wrong with a host:port address, or "".
func checkHostPort(addr string) string {
	if addr == "" {
		return "required (host:port or :port)"
	}
	if !strings.Contains(addr, ":") {
		return "missing port"
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Sprintf("invalid address %q (want host:port)", addr)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Sprintf("invalid port %q", port)
	}
	return ""
}

// checkURL returns what is wrong with an absolute URL of one of the given
// schemes, or "".
//
// The URL itself is never quoted back: it may carry credentials
// (http://user:password@pbx/ari), so a parse error says only what is wrong
// and a parsed URL is shown redacted.
func checkURL(raw string, schemes ...string) string {
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Sprintf("invalid URL (%v)", err)
	}
	for _, s := range schemes {
		if u.Scheme == s {
			if u.Host == "" {
				return fmt.Sprintf("%q has no host", u.Redacted())
			}
			return ""
		}
	}
	return fmt.Sprintf("scheme %q not supported (want %s)", u.Scheme, strings.Join(schemes, " or "))
}

// LoadFile reads a YAML daemon config on top of Default(). Unknown fields
// are errors naming their line; an empty file gives the defaults. It does
// not validate: cmd calls Validate once env and flags are applied.
func LoadFile(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("load config: %w", err)
	}
	c := Default()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("load config %s: %w", path, withoutValues(err))
	}
	return c, nil
}

// withoutValues drops the values yaml quotes in its type errors
// ("cannot unmarshal !!str `s3cr3t` into config.Redis"): a misplaced or
// mis-indented password would otherwise be printed. The line and the
// expected type stay, which is what the reader needs to fix the file.
func withoutValues(err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	msgs := make([]string, len(te.Errors))
	for i, m := range te.Errors {
		var b strings.Builder
		for {
			before, rest, ok := strings.Cut(m, "`")
			b.WriteString(before)
			if !ok {
				break
			}
			_, after, closed := strings.Cut(rest, "`")
			b.WriteString("(value not shown)")
			if !closed {
				break
			}
			m = after
		}
		msgs[i] = b.String()
	}
	return fmt.Errorf("yaml: %s", strings.Join(msgs, "; "))
}

// The environment variables ApplyEnv reads.
const (
	EnvProfiles                     = "CALLWARDEN_PROFILES"
	EnvHTTPListen                   = "CALLWARDEN_HTTP_LISTEN"
	EnvHTTPShutdownTimeout          = "CALLWARDEN_HTTP_SHUTDOWN_TIMEOUT"
	EnvHTTPReadTimeout              = "CALLWARDEN_HTTP_READ_TIMEOUT"
	EnvHTTPCheckAuth                = "CALLWARDEN_HTTP_CHECK_AUTH"
	EnvLogLevel                     = "CALLWARDEN_LOG_LEVEL"
	EnvLogFormat                    = "CALLWARDEN_LOG_FORMAT"
	EnvAsteriskURL                  = "CALLWARDEN_ASTERISK_URL"
	EnvAsteriskWebsocketURL         = "CALLWARDEN_ASTERISK_WEBSOCKET_URL"
	EnvAsteriskUser                 = "CALLWARDEN_ASTERISK_USER"
	EnvAsteriskPassword             = "CALLWARDEN_ASTERISK_PASSWORD"
	EnvAsteriskApp                  = "CALLWARDEN_ASTERISK_APP"
	EnvAsteriskTimeout              = "CALLWARDEN_ASTERISK_TIMEOUT"
	EnvAsteriskWatchdog             = "CALLWARDEN_ASTERISK_WATCHDOG"
	EnvAsteriskPBX                  = "CALLWARDEN_ASTERISK_PBX"
	EnvAsteriskSiblings             = "CALLWARDEN_ASTERISK_SIBLINGS"
	EnvFreeSWITCHESLAddress         = "CALLWARDEN_FREESWITCH_ESL_ADDRESS"
	EnvFreeSWITCHESLPassword        = "CALLWARDEN_FREESWITCH_ESL_PASSWORD"
	EnvFreeSWITCHOutboundListen     = "CALLWARDEN_FREESWITCH_OUTBOUND_LISTEN"
	EnvFreeSWITCHPBX                = "CALLWARDEN_FREESWITCH_PBX"
	EnvFreeSWITCHTimeout            = "CALLWARDEN_FREESWITCH_TIMEOUT"
	EnvFreeSWITCHWatchdog           = "CALLWARDEN_FREESWITCH_WATCHDOG"
	EnvFreeSWITCHRecordingsDir      = "CALLWARDEN_FREESWITCH_RECORDINGS_DIR"
	EnvRedisAddrs                   = "CALLWARDEN_REDIS_ADDRS"
	EnvRedisMasterName              = "CALLWARDEN_REDIS_MASTER_NAME"
	EnvRedisUsername                = "CALLWARDEN_REDIS_USERNAME"
	EnvRedisPassword                = "CALLWARDEN_REDIS_PASSWORD"
	EnvRedisPrefix                  = "CALLWARDEN_REDIS_PREFIX"
	EnvRedisStaleness               = "CALLWARDEN_REDIS_STALENESS"
	EnvAdminTokensFile              = "CALLWARDEN_ADMIN_TOKENS_FILE"
	EnvAuditHTTPQueueSize           = "CALLWARDEN_AUDIT_HTTP_QUEUE_SIZE"
	EnvAuditPBXQueueSize            = "CALLWARDEN_AUDIT_PBX_QUEUE_SIZE"
	EnvRecordingsRetain             = "CALLWARDEN_RECORDINGS_RETAIN"
	EnvFreeSWITCHRecordingsLocalDir = "CALLWARDEN_FREESWITCH_RECORDINGS_LOCAL_DIR"
	EnvFreeSWITCHWatchdogLease      = "CALLWARDEN_FREESWITCH_WATCHDOG_LEASE"
	EnvRedisWaitReplicas            = "CALLWARDEN_REDIS_WAIT_REPLICAS"
	EnvRedisWaitTimeout             = "CALLWARDEN_REDIS_WAIT_TIMEOUT"
)

// ApplyEnv overlays CALLWARDEN_* variables read through getenv (cmd passes
// os.Getenv; tests pass a map). An empty variable is unset. Lists
// (CALLWARDEN_PROFILES, CALLWARDEN_REDIS_ADDRS) are comma-separated;
// durations use Go syntax ("10s"). Every malformed variable is reported,
// by name, in the returned error; the valid ones are still applied.
func (c *Config) ApplyEnv(getenv func(string) string) error {
	var errs []error
	str := func(name string, dst *string) {
		if v := getenv(name); v != "" {
			*dst = v
		}
	}
	secret := func(name string, dst *Secret) {
		if v := getenv(name); v != "" {
			*dst = Secret(v)
		}
	}
	list := func(name string, dst *[]string) {
		if v := getenv(name); v != "" {
			*dst = splitList(v)
		}
	}
	dur := func(name string, dst *time.Duration) {
		v := getenv(name)
		if v == "" {
			return
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: invalid duration %q (want e.g. 10s)", name, v))
			return
		}
		*dst = d
	}
	boolean := func(name string, dst *bool) {
		v := getenv(name)
		if v == "" {
			return
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: invalid boolean %q (want true or false)", name, v))
			return
		}
		*dst = b
	}
	integer := func(name string, dst *int) {
		v := getenv(name)
		if v == "" {
			return
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: invalid number %q", name, v))
			return
		}
		*dst = n
	}
	list(EnvProfiles, &c.Profiles)
	str(EnvHTTPListen, &c.HTTP.Listen)
	dur(EnvHTTPShutdownTimeout, &c.HTTP.ShutdownTimeout)
	dur(EnvHTTPReadTimeout, &c.HTTP.ReadTimeout)
	str(EnvHTTPCheckAuth, &c.HTTP.CheckAuth)
	str(EnvLogLevel, &c.Log.Level)
	str(EnvLogFormat, &c.Log.Format)
	str(EnvAsteriskURL, &c.Asterisk.URL)
	str(EnvAsteriskWebsocketURL, &c.Asterisk.WebsocketURL)
	str(EnvAsteriskUser, &c.Asterisk.User)
	secret(EnvAsteriskPassword, &c.Asterisk.Password)
	str(EnvAsteriskApp, &c.Asterisk.App)
	dur(EnvAsteriskTimeout, &c.Asterisk.Timeout)
	str(EnvAsteriskWatchdog, &c.Asterisk.Watchdog)
	str(EnvAsteriskPBX, &c.Asterisk.PBX)
	list(EnvAsteriskSiblings, &c.Asterisk.Siblings)
	str(EnvFreeSWITCHESLAddress, &c.FreeSWITCH.ESLAddress)
	secret(EnvFreeSWITCHESLPassword, &c.FreeSWITCH.ESLPassword)
	str(EnvFreeSWITCHOutboundListen, &c.FreeSWITCH.OutboundListen)
	str(EnvFreeSWITCHPBX, &c.FreeSWITCH.PBX)
	dur(EnvFreeSWITCHTimeout, &c.FreeSWITCH.Timeout)
	str(EnvFreeSWITCHWatchdog, &c.FreeSWITCH.Watchdog)
	str(EnvFreeSWITCHRecordingsDir, &c.FreeSWITCH.RecordingsDir)
	if v := strings.TrimSpace(getenv(EnvRedisAddrs)); IsRedisURL(v) {
		// One URL: its password may hold commas.
		c.Redis.Addrs = []string{v}
	} else {
		list(EnvRedisAddrs, &c.Redis.Addrs)
	}
	str(EnvRedisMasterName, &c.Redis.MasterName)
	str(EnvRedisUsername, &c.Redis.Username)
	secret(EnvRedisPassword, &c.Redis.Password)
	str(EnvRedisPrefix, &c.Redis.Prefix)
	dur(EnvRedisStaleness, &c.Redis.Staleness)
	integer(EnvRedisWaitReplicas, &c.Redis.WaitReplicas)
	dur(EnvRedisWaitTimeout, &c.Redis.WaitTimeout)
	str(EnvAdminTokensFile, &c.Admin.TokensFile)
	integer(EnvAuditHTTPQueueSize, &c.Audit.HTTPQueueSize)
	integer(EnvAuditPBXQueueSize, &c.Audit.PBXQueueSize)
	str(EnvRecordingsRetain, &c.Recordings.Retain)
	str(EnvFreeSWITCHRecordingsLocalDir, &c.FreeSWITCH.RecordingsLocalDir)
	boolean(EnvFreeSWITCHWatchdogLease, &c.FreeSWITCH.WatchdogLease)
	return errors.Join(errs...)
}

// splitList splits a comma-separated value, trimming spaces and dropping
// empty items.
func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

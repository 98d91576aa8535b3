package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// A Redis address is either host:port or, for a single server, a URL:
// redis://[user[:password]@]host[:port][/db], or rediss:// for TLS (the
// server name checked is the host). The URL's password is a secret: no
// error, log line or config dump prints it (see RedactRedisAddr).
const (
	schemeRedis  = "redis://"
	schemeRediss = "rediss://"
	// DefaultRedisPort is the port of a redis:// URL that names none.
	DefaultRedisPort = "6379"
	// redactedPassword replaces a URL's password when printed, as
	// url.URL.Redacted does.
	redactedPassword = "xxxxx"
)

// ErrRedisAddr wraps every problem ParseRedisAddr reports. Its messages
// never include the password.
var ErrRedisAddr = errors.New("invalid redis address")

// addrError is a problem of a Redis address; it matches ErrRedisAddr.
type addrError struct{ err error }

func (e addrError) Error() string        { return e.err.Error() }
func (e addrError) Unwrap() error        { return e.err }
func (e addrError) Is(target error) bool { return target == ErrRedisAddr }

func addrErr(format string, args ...any) error { return addrError{fmt.Errorf(format, args...)} }

// RedisAddr is one parsed Redis address.
type RedisAddr struct {
	// Addr is host:port.
	Addr string
	// URL is true when the address was a redis:// or rediss:// URL; the
	// fields below come from it.
	URL      bool
	Username string
	Password Secret
	DB       int
	// TLS is set by rediss://; ServerName is then the URL's host.
	TLS        bool
	ServerName string
}

// IsRedisURL reports whether s is written as a redis:// or rediss:// URL.
func IsRedisURL(s string) bool {
	l := strings.ToLower(strings.TrimSpace(s))
	return strings.HasPrefix(l, schemeRedis) || strings.HasPrefix(l, schemeRediss)
}

// splitCredentials splits s at its last '@': everything before it is
// credentials, whatever characters they hold (an unescaped '/' or ':' in
// a password must not turn part of it into a host or a port that an error
// would print). ok is false when s has no '@'.
func splitCredentials(s string) (creds, host string, ok bool) {
	i := strings.LastIndexByte(s, '@')
	if i < 0 {
		return "", s, false
	}
	return s[:i], s[i+1:], true
}

// ParseRedisAddr parses a host:port address or a redis:// / rediss://
// URL. Errors wrap ErrRedisAddr and never print the credentials.
func ParseRedisAddr(raw string) (RedisAddr, error) {
	s := strings.TrimSpace(raw)
	if !IsRedisURL(s) {
		if _, _, ok := splitCredentials(s); ok {
			return RedisAddr{}, addrErr("credentials need the URL form redis://user:password@host:port (or redis.username and redis.password)")
		}
		if msg := checkHostPort(s); msg != "" {
			return RedisAddr{}, addrErr("%s", msg)
		}
		return RedisAddr{Addr: s}, nil
	}
	a := RedisAddr{URL: true}
	rest := s[len(schemeRedis):]
	if strings.HasPrefix(strings.ToLower(s), schemeRediss) {
		a.TLS, rest = true, s[len(schemeRediss):]
	}
	creds, hostPart, hasCreds := splitCredentials(rest)
	if hasCreds {
		user, pass, hasPass := strings.Cut(creds, ":")
		var err error
		if a.Username, err = url.PathUnescape(user); err != nil {
			return RedisAddr{}, addrErr("invalid %%-escape in the user name")
		}
		if hasPass {
			p, err := url.PathUnescape(pass)
			if err != nil {
				return RedisAddr{}, addrErr("invalid %%-escape in the password")
			}
			a.Password = Secret(p)
		}
	}
	// What is left holds no credentials: its errors may be printed.
	u, err := url.Parse(schemeRedis + hostPart)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return RedisAddr{}, addrErr("%w", err)
	}
	switch {
	case u.User != nil:
		return RedisAddr{}, addrErr("unexpected credentials")
	case u.RawQuery != "" || u.ForceQuery:
		return RedisAddr{}, addrErr("URL options (?...) are not supported; set them in the redis block")
	case u.Fragment != "":
		return RedisAddr{}, addrErr("unexpected #fragment")
	case u.Hostname() == "":
		return RedisAddr{}, addrErr("the URL has no host")
	}
	port := u.Port()
	if port == "" {
		port = DefaultRedisPort
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return RedisAddr{}, addrErr("invalid port %q", port)
	}
	a.Addr = net.JoinHostPort(u.Hostname(), port)
	if a.TLS {
		a.ServerName = u.Hostname()
	}
	if db := strings.TrimPrefix(u.Path, "/"); db != "" {
		n, err := strconv.ParseUint(db, 10, 16)
		if err != nil {
			return RedisAddr{}, addrErr("invalid database number %q (want /0, /1, ...)", db)
		}
		a.DB = int(n)
	}
	return a, nil
}

// RedactRedisAddr returns addr fit to print: a URL's password replaced by
// xxxxx (redis://user:xxxxx@host:6379/0), the credentials of anything
// else that carries some replaced whole.
func RedactRedisAddr(addr string) string {
	if !IsRedisURL(addr) {
		if _, host, ok := splitCredentials(addr); ok {
			return redactedPassword + "@" + host
		}
		return addr
	}
	a, err := ParseRedisAddr(addr)
	if err != nil {
		scheme := schemeRedis
		if strings.HasPrefix(strings.ToLower(strings.TrimSpace(addr)), schemeRediss) {
			scheme = schemeRediss
		}
		if _, host, ok := splitCredentials(addr); ok {
			return scheme + redactedPassword + "@" + host
		}
		return addr
	}
	u := url.URL{Scheme: "redis", Host: a.Addr, Path: "/" + strconv.Itoa(a.DB)}
	if a.TLS {
		u.Scheme = "rediss"
	}
	switch {
	case a.Password != "":
		u.User = url.UserPassword(a.Username, a.Password.Reveal())
	case a.Username != "":
		u.User = url.User(a.Username)
	}
	return u.Redacted()
}

// RedisConn is the connection a valid Redis block describes: a redis://
// URL taken apart into the server's address and its credentials,
// database and TLS; host:port addresses with the block's credentials.
type RedisConn struct {
	Addrs    []string
	Username string
	Password Secret
	DB       int
	// TLS is set by a rediss:// URL; ServerName is then its host.
	TLS        bool
	ServerName string
}

// Conn returns the connection r describes, or why it cannot (errors never
// print a password): a URL names a single server (no master_name, no
// other address) and its credentials may not also be set apart.
func (r Redis) Conn() (RedisConn, error) {
	c := RedisConn{Username: r.Username, Password: r.Password}
	var errs []error
	for i, raw := range r.Addrs {
		a, err := ParseRedisAddr(raw)
		if err != nil {
			errs = append(errs, fmt.Errorf("redis.addrs[%d]: %w", i, err))
			continue
		}
		c.Addrs = append(c.Addrs, a.Addr)
		if !a.URL {
			continue
		}
		if len(r.Addrs) > 1 || r.MasterName != "" {
			errs = append(errs, fmt.Errorf("redis.addrs[%d]: a redis:// URL names a single server; give Sentinel and Cluster nodes as host:port with redis.username and redis.password", i))
			continue
		}
		if a.Username != "" && r.Username != "" {
			errs = append(errs, fmt.Errorf("redis.addrs[%d]: user name given both in the URL and in redis.username", i))
		}
		if a.Password != "" && r.Password != "" {
			errs = append(errs, fmt.Errorf("redis.addrs[%d]: password given both in the URL and in redis.password", i))
		}
		if a.Username != "" {
			c.Username = a.Username
		}
		if a.Password != "" {
			c.Password = a.Password
		}
		c.DB, c.TLS, c.ServerName = a.DB, a.TLS, a.ServerName
	}
	if err := errors.Join(errs...); err != nil {
		return RedisConn{}, err
	}
	return c, nil
}

// redisPrintable is Redis without its methods, so that the redacted copy
// marshals field by field.
type redisPrintable Redis

// redacted returns a copy of r whose addresses are fit to print.
func (r Redis) redacted() redisPrintable {
	out := redisPrintable(r)
	if r.Addrs != nil {
		out.Addrs = make([]string, len(r.Addrs))
		for i, a := range r.Addrs {
			out.Addrs[i] = RedactRedisAddr(a)
		}
	}
	return out
}

// String prints r with URL passwords redacted (fmt's %v and %+v; the
// password field is a Secret).
func (r Redis) String() string { return fmt.Sprintf("%+v", r.redacted()) }

// GoString prints r for %#v with URL passwords redacted.
func (r Redis) GoString() string { return fmt.Sprintf("%#v", r.redacted()) }

// MarshalYAML writes r back with URL passwords redacted.
func (r Redis) MarshalYAML() (any, error) { return r.redacted(), nil }

// MarshalJSON writes r with URL passwords redacted.
func (r Redis) MarshalJSON() ([]byte, error) { return json.Marshal(r.redacted()) }

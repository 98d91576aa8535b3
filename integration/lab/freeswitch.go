package lab

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/testcontainers/testcontainers-go"
)

// The FreeSWITCH lab: callwarden-lab/freeswitch:1.10.12 (loaded by
// deploy/lab/load-freeswitch.sh, `make lab`) with the lab's own configuration,
// deploy/lab/freeswitch/conf, copied over /usr/local/freeswitch/conf before it starts.
const (
	FreeSWITCHImage   = "callwarden-lab/freeswitch:1.10.12"
	FreeSWITCHVersion = "1.10.12"
	// FreeSWITCHESLPassword is the inbound ESL password of the lab's vars.xml. Lab only.
	FreeSWITCHESLPassword = "callwarden"
	// FreeSWITCHConfDir is the lab configuration, relative to the repository root.
	FreeSWITCHConfDir = "deploy/lab/freeswitch/conf"
)

// Environment of the FreeSWITCH harness.
const (
	// EnvFreeSWITCHHostIP overrides the address at which the FreeSWITCH container
	// reaches this process (outbound sockets); default: its bridge network's gateway.
	EnvFreeSWITCHHostIP = "CALLWARDEN_FREESWITCH_HOST_IP"
	// EnvFreeSWITCHConf overrides the configuration directory copied into the container.
	EnvFreeSWITCHConf = "CALLWARDEN_FREESWITCH_CONF"
)

const (
	eslPort           = "8021/tcp"
	freeswitchConf    = "/usr/local/freeswitch/conf"
	freeswitchStartTO = 60 * time.Second
)

// FreeSWITCHOptions adjusts one FreeSWITCH container; the zero value is the lab.
type FreeSWITCHOptions struct {
	// ConfDir replaces the lab configuration (default: FreeSWITCHConfDir, found from
	// the working directory upwards, or $CALLWARDEN_FREESWITCH_CONF).
	ConfDir string
	// Env adds container environment (the image reads FS_* and CALLWARDEN_SOCKET).
	Env map[string]string
	// ESLInsideOnly is for a configuration whose event socket listens inside the
	// container only (a production event_socket.conf.xml on 127.0.0.1, such as
	// deploy/freeswitch's): readiness is then read with fs_cli in the container,
	// authenticated with ESLPassword, and ESLAddr, API and DialESL do not work.
	ESLInsideOnly bool
	// ESLPassword is the configuration's ESL password (default: the lab's).
	ESLPassword string
}

// FreeSWITCH is a running FreeSWITCH container. Its methods are safe for concurrent use.
type FreeSWITCH struct {
	// ESLPassword authenticates to the inbound event socket.
	ESLPassword string
	// HostIP is where the container reaches this process: outbound socket listeners
	// (ListenOutbound) must listen there.
	HostIP string

	c         testcontainers.Container
	eslInside bool // ESL answers inside the container only (FreeSWITCHOptions.ESLInsideOnly)

	mu      sync.Mutex
	eslAddr string
	idle    []*ESL // authenticated connections API and SendMsg reuse (at most maxIdleESL)

	closeOnce sync.Once
	closeErr  error
}

// StartFreeSWITCH checks Docker and the image, starts a FreeSWITCH container with the
// lab configuration and waits until its event socket accepts `auth` and FreeSWITCH
// reports itself ready (about 5 s). Errors wrap ErrDockerUnavailable or
// ErrImageMissing when that is the cause.
func StartFreeSWITCH(ctx context.Context, opts FreeSWITCHOptions) (*FreeSWITCH, error) {
	if err := preflight(ctx, FreeSWITCHImage); err != nil {
		return nil, err
	}
	conf, err := freeswitchConfDir(opts.ConfDir)
	if err != nil {
		return nil, err
	}
	// ESL is published on a host port chosen here rather than by Docker: Docker picks
	// a new ephemeral port at every start, so after Restart a daemon configured with
	// ESLAddr could never reconnect. A fixed binding survives docker stop/start.
	hostPort, err := freeLoopbackPort()
	if err != nil {
		return nil, err
	}
	req := testcontainers.ContainerRequest{
		Image:        FreeSWITCHImage,
		ExposedPorts: []string{eslPort},
		HostConfigModifier: func(hc *container.HostConfig) {
			hc.PortBindings = network.PortMap{network.MustParsePort(eslPort): {{
				HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: hostPort,
			}}}
		},
		Labels: ownerLabels(),
		Env:    opts.Env,
		// Copied rather than bind-mounted, so a remote Docker engine works too.
		Files: []testcontainers.ContainerFile{{HostFilePath: conf, ContainerFilePath: freeswitchConf, FileMode: 0o644}},
	}
	c, err := startContainer(ctx, req)
	if err != nil {
		return nil, err
	}
	fs := &FreeSWITCH{ESLPassword: cmp.Or(opts.ESLPassword, FreeSWITCHESLPassword), c: c, eslInside: opts.ESLInsideOnly}
	if err := fs.afterStart(ctx); err != nil {
		return nil, errors.Join(err, fs.Close(context.WithoutCancel(ctx)))
	}
	return fs, nil
}

// freeLoopbackPort returns a TCP port free on 127.0.0.1 right now.
func freeLoopbackPort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("choose the ESL host port: %w", err)
	}
	defer ln.Close()
	_, port, err := net.SplitHostPort(ln.Addr().String())
	return port, err
}

// freeswitchConfDir resolves the configuration directory to copy in.
func freeswitchConfDir(dir string) (string, error) {
	if dir == "" {
		dir = os.Getenv(EnvFreeSWITCHConf)
	}
	if dir != "" {
		return filepath.Abs(dir)
	}
	root, err := repoRoot()
	if err != nil {
		return "", fmt.Errorf("find %s: %w (set %s)", FreeSWITCHConfDir, err, EnvFreeSWITCHConf)
	}
	return filepath.Join(root, FreeSWITCHConfDir), nil
}

// repoRoot is the repository's root: the first directory holding a go.mod from
// the working directory upwards.
func repoRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod above %s", wd)
		}
	}
}

// afterStart learns the ESL address and the host IP, then waits until ESL is ready.
func (fs *FreeSWITCH) afterStart(ctx context.Context) error {
	addr, err := fs.c.PortEndpoint(ctx, eslPort, "")
	if err != nil {
		return fmt.Errorf("freeswitch ESL port: %w", err)
	}
	fs.mu.Lock()
	fs.eslAddr = addr
	fs.mu.Unlock()
	if fs.HostIP == "" {
		if fs.HostIP, err = fs.hostIP(ctx); err != nil {
			return err
		}
	}
	return fs.waitReady(ctx)
}

// hostIP is $CALLWARDEN_FREESWITCH_HOST_IP, else the gateway of the container's network
// (on a local engine, the host's address on that bridge, e.g. 172.17.0.1).
func (fs *FreeSWITCH) hostIP(ctx context.Context) (string, error) {
	if ip := os.Getenv(EnvFreeSWITCHHostIP); ip != "" {
		return ip, nil
	}
	info, err := fs.c.Inspect(ctx)
	if err != nil {
		return "", fmt.Errorf("inspect freeswitch container: %w", err)
	}
	if info.NetworkSettings != nil {
		for _, n := range info.NetworkSettings.Networks {
			if n != nil && n.Gateway.IsValid() {
				return n.Gateway.String(), nil
			}
		}
	}
	return "", fmt.Errorf("freeswitch container has no network gateway: set %s", EnvFreeSWITCHHostIP)
}

// waitReady polls ESL until `api status` says FreeSWITCH is up and ready.
func (fs *FreeSWITCH) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, freeswitchStartTO)
	defer cancel()
	var last error
	for {
		out, err := fs.status(ctx)
		if err == nil && strings.Contains(out, "is ready") {
			return nil
		}
		last = errors.Join(err, fmt.Errorf("status: %q", firstLine(out)))
		select {
		case <-ctx.Done():
			return fmt.Errorf("freeswitch ESL at %s not ready: %w (last: %w)", fs.ESLAddr(), ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// status is `api status`, asked from inside the container when ESL answers there only.
func (fs *FreeSWITCH) status(ctx context.Context) (string, error) {
	if fs.eslInside {
		return fs.Exec(ctx, "fs_cli", "-p", fs.ESLPassword, "-x", "status")
	}
	return fs.API(ctx, "status")
}

// ESLAddr is host:port of the inbound event socket; it survives Restart.
func (fs *FreeSWITCH) ESLAddr() string {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.eslAddr
}

// DialESL opens an authenticated inbound ESL connection; the caller closes it.
func (fs *FreeSWITCH) DialESL(ctx context.Context) (*ESL, error) {
	return DialESL(ctx, fs.ESLAddr(), fs.ESLPassword)
}

// API runs one api command and returns its output. Each command has a connection to
// itself while it runs (a long originate blocks nobody, and no test's events share
// it); connections are reused afterwards: a table of a hundred calls polls FreeSWITCH
// thousands of times, and a new connection for each poll through Docker's port proxy
// once made a dial time out under load. A connection that failed or timed out is
// closed, never reused (its late reply would answer the next command); a reused one
// found closed (FreeSWITCH restarted) is replaced once.
func (fs *FreeSWITCH) API(ctx context.Context, cmd string) (string, error) {
	var out string
	err := fs.withESL(ctx, func(ctx context.Context, c *ESL) (err error) {
		out, err = c.API(ctx, cmd)
		return err
	})
	return out, err
}

// SendMsg sends `sendmsg <uuid>` with headers, as API does a command.
func (fs *FreeSWITCH) SendMsg(ctx context.Context, uuid string, headers ...string) error {
	return fs.withESL(ctx, func(ctx context.Context, c *ESL) error { return c.SendMsg(ctx, uuid, headers...) })
}

// maxIdleESL bounds the connections kept for reuse.
const maxIdleESL = 4

// withESL runs do on an idle connection or a new one, and keeps the connection for
// reuse when do succeeded or FreeSWITCH answered with an error (the exchange is
// complete); otherwise it closes it. A reused connection that fails before any reply
// (closed by a restart) is dropped and do runs once more on a new one.
func (fs *FreeSWITCH) withESL(ctx context.Context, do func(context.Context, *ESL) error) error {
	ctx, cancel := withDeadline(ctx)
	defer cancel()
	if c := fs.takeIdle(); c != nil {
		err := do(ctx, c)
		if err == nil || errors.Is(err, ErrESL) {
			fs.putIdle(c)
			return err
		}
		c.Close()
		if !stale(err) {
			return err
		}
	}
	c, err := fs.DialESL(ctx)
	if err != nil {
		return err
	}
	err = do(ctx, c)
	if err == nil || errors.Is(err, ErrESL) {
		fs.putIdle(c)
	} else {
		c.Close()
	}
	return err
}

// stale reports whether err says a reused connection was closed under it (FreeSWITCH
// restarted), not that a command went unanswered.
func stale(err error) bool {
	return errors.Is(err, ErrDisconnected) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, net.ErrClosed)
}

func (fs *FreeSWITCH) takeIdle() *ESL {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if n := len(fs.idle); n > 0 {
		c := fs.idle[n-1]
		fs.idle = fs.idle[:n-1]
		return c
	}
	return nil
}

func (fs *FreeSWITCH) putIdle(c *ESL) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if len(fs.idle) >= maxIdleESL {
		c.Close()
		return
	}
	fs.idle = append(fs.idle, c)
}

// dropIdle closes the connections kept for reuse (before a restart or at close).
func (fs *FreeSWITCH) dropIdle() {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for _, c := range fs.idle {
		c.Close()
	}
	fs.idle = nil
}

// Restart stops FreeSWITCH (cleanly, like `docker stop`), starts it again and waits
// until ESL is ready. ESLAddr stays the same (its host port is bound explicitly), so
// a daemon configured with it can reconnect.
func (fs *FreeSWITCH) Restart(ctx context.Context) error {
	timeout := 10 * time.Second
	fs.dropIdle()
	if err := fs.c.Stop(ctx, &timeout); err != nil {
		return fmt.Errorf("stop freeswitch: %w", err)
	}
	if err := fs.c.Start(ctx); err != nil {
		return fmt.Errorf("start freeswitch: %w", err)
	}
	return fs.afterStart(ctx)
}

// Exec runs a command in the container (e.g. fs_cli) and returns its output.
func (fs *FreeSWITCH) Exec(ctx context.Context, cmd ...string) (string, error) {
	return containerExec(ctx, fs.c, fmt.Sprintf("exec %q", cmd), cmd...)
}

// ReadFile copies a file out of the container (e.g. a recording).
func (fs *FreeSWITCH) ReadFile(ctx context.Context, path string) ([]byte, error) {
	return readContainerFile(ctx, "freeswitch", fs.c, path)
}

// WriteFile writes data to path in the container (e.g. a recording to play).
func (fs *FreeSWITCH) WriteFile(ctx context.Context, path string, data []byte) error {
	return writeContainerFile(ctx, fs.c, path, data)
}

// Logs returns FreeSWITCH's stdout log so far (for failure reports).
func (fs *FreeSWITCH) Logs(ctx context.Context) (string, error) {
	return containerLogs(ctx, "freeswitch", fs.c)
}

// ContainerID is the container's id.
func (fs *FreeSWITCH) ContainerID() string { return fs.c.GetContainerID() }

// Close removes the container. It is idempotent.
func (fs *FreeSWITCH) Close(ctx context.Context) error {
	fs.closeOnce.Do(func() {
		fs.dropIdle()
		err := testcontainers.TerminateContainer(fs.c, testcontainers.StopContext(ctx), testcontainers.StopTimeout(2*time.Second))
		if err != nil && !cerrdefs.IsNotFound(err) {
			fs.closeErr = fmt.Errorf("remove container %s: %w", fs.c.GetContainerID(), err)
		}
	})
	return fs.closeErr
}

// Package lab starts callwarden's integration lab, a real Asterisk 22 and a real Redis
// in containers driven by testcontainers-go, and gives tests small clients for them:
// ARI REST and events (plain HTTP and a minimal websocket reader) and go-redis.
//
// The images are built by deploy/lab/build.sh (`make lab`); this package never builds
// or pulls them. It owns the lab containers' lifetime and nothing else: it must not
// import callwarden's own packages, so every suite (enforce, pbx/asterisk, cmd) can use
// it without cycles.
//
// A test package uses it from TestMain:
//
//	var suite lab.Suite
//
//	func TestMain(m *testing.M) { os.Exit(suite.Main(m)) }
//
//	func TestSomething(t *testing.T) {
//		l := suite.Lab(t) // skips or fails, with the reason, when Docker is missing
//		call, err := l.OriginateCustomer(ctx, "sales")
//		...
//	}
package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"github.com/testcontainers/testcontainers-go"
	tcexec "github.com/testcontainers/testcontainers-go/exec"
	"github.com/testcontainers/testcontainers-go/wait"
)

// Image tags built by deploy/lab/build.sh (and by the Dockerfiles under deploy/lab).
const (
	AsteriskImage = "callwarden-lab/asterisk:22"
	RedisImage    = "callwarden-lab/redis:7"
)

// Lab credentials, from deploy/lab/asterisk/etc/asterisk/ari.conf. Lab only.
const (
	ARIUser     = "callwarden"
	ARIPassword = "callwarden"
)

// Container labels: every lab container carries LabelLab; LabelPID and LabelHost name
// the process that started it, so a later run can remove what a killed run left behind.
const (
	LabelLab  = "org.callwarden.lab"
	LabelPID  = "org.callwarden.lab.pid"
	LabelHost = "org.callwarden.lab.host"
)

// EnvIntegration is the environment variable that makes the suite mandatory: when it
// is "required" (CI sets it), a missing Docker fails the run instead of skipping it.
const EnvIntegration = "CALLWARDEN_INTEGRATION"

var (
	// ErrDockerUnavailable wraps every failure to reach a Docker engine.
	ErrDockerUnavailable = errors.New("docker unavailable")
	// ErrImageMissing wraps a lab image that is not in the local Docker.
	ErrImageMissing = errors.New("lab image missing")
)

// Lab is a running Asterisk and Redis pair. Its fields are safe for concurrent use.
type Lab struct {
	// ARIURL is the ARI REST base, e.g. http://localhost:32768/ari.
	ARIURL string
	// ARIEventsURL is the ARI websocket, e.g. ws://localhost:32768/ari/events.
	ARIEventsURL string
	// ARIUser and ARIPassword authenticate to ARI.
	ARIUser, ARIPassword string
	// RedisAddr is host:port of Redis (no password, database 0).
	RedisAddr string

	// ARI is a client of ARIURL.
	ARI *ARI
	// Redis is a client of RedisAddr.
	Redis *redis.Client

	asterisk testcontainers.Container
	redis    testcontainers.Container

	closeOnce sync.Once
	closeErr  error
}

// Start checks Docker and the images, then starts Asterisk and Redis in parallel and
// waits until ARI answers and Redis replies to PING. ctx bounds the whole start.
// Errors wrap ErrDockerUnavailable or ErrImageMissing when that is the cause.
func Start(ctx context.Context) (*Lab, error) {
	if err := preflight(ctx, AsteriskImage, RedisImage); err != nil {
		return nil, err
	}
	l := &Lab{ARIUser: ARIUser, ARIPassword: ARIPassword}
	var (
		wg               sync.WaitGroup
		errAst, errRedis error
	)
	wg.Add(2)
	go func() { defer wg.Done(); l.asterisk, errAst = startContainer(ctx, asteriskRequest()) }()
	go func() { defer wg.Done(); l.redis, errRedis = startContainer(ctx, redisRequest()) }()
	wg.Wait()
	if err := errors.Join(errAst, errRedis); err != nil {
		return nil, errors.Join(err, l.terminate(context.WithoutCancel(ctx)))
	}
	if err := l.connect(ctx); err != nil {
		return nil, errors.Join(err, l.Close(context.WithoutCancel(ctx)))
	}
	return l, nil
}

// StartRedis starts the lab's Redis alone (a FreeSWITCH lab needs no Asterisk): the
// Lab has RedisAddr and Redis, no ARI.
func StartRedis(ctx context.Context) (*Lab, error) {
	if err := preflight(ctx, RedisImage); err != nil {
		return nil, err
	}
	l := &Lab{}
	var err error
	if l.redis, err = startContainer(ctx, redisRequest()); err != nil {
		return nil, err
	}
	if err := l.connectRedis(ctx); err != nil {
		return nil, errors.Join(err, l.Close(context.WithoutCancel(ctx)))
	}
	return l, nil
}

// StartAsterisk starts one more Asterisk of the lab image, alone: a second
// PBX beside a running lab, sharing its Redis. The Lab has ARI, no Redis;
// Close removes the container.
func StartAsterisk(ctx context.Context) (*Lab, error) {
	l := &Lab{ARIUser: ARIUser, ARIPassword: ARIPassword}
	var err error
	if l.asterisk, err = startContainer(ctx, asteriskRequest()); err != nil {
		return nil, err
	}
	if err := l.connectARI(ctx); err != nil {
		return nil, errors.Join(err, l.Close(context.WithoutCancel(ctx)))
	}
	return l, nil
}

func asteriskRequest() testcontainers.ContainerRequest {
	// "Asterisk Ready." is printed once every module is loaded; ARI may answer
	// a little earlier, before app_queue is there.
	return containerRequest(AsteriskImage, "8088/tcp", 90*time.Second,
		wait.ForLog("Asterisk Ready."),
		wait.ForHTTP("/ari/asterisk/info").
			WithPort("8088/tcp").
			WithBasicAuth(ARIUser, ARIPassword).
			WithPollInterval(100*time.Millisecond))
}

func redisRequest() testcontainers.ContainerRequest {
	return containerRequest(RedisImage, "6379/tcp", 60*time.Second,
		wait.ForLog("Ready to accept connections"),
		wait.ForListeningPort("6379/tcp"))
}

// containerRequest is a lab container of image exposing port, labelled as
// the lab's, ready when every wait strategy is, within deadline.
func containerRequest(image, port string, deadline time.Duration, ready ...wait.Strategy) testcontainers.ContainerRequest {
	return testcontainers.ContainerRequest{
		Image:        image,
		ExposedPorts: []string{port},
		Labels:       ownerLabels(),
		WaitingFor:   wait.ForAll(ready...).WithDeadline(deadline),
	}
}

func ownerLabels() map[string]string {
	host, _ := os.Hostname()
	return map[string]string{LabelLab: "integration", LabelPID: strconv.Itoa(os.Getpid()), LabelHost: host}
}

func startContainer(ctx context.Context, req testcontainers.ContainerRequest) (testcontainers.Container, error) {
	c, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{
		ContainerRequest: req,
		Started:          true,
	})
	if err != nil {
		// A container that started but never got ready is returned with the error.
		if c != nil {
			err = errors.Join(err, testcontainers.TerminateContainer(c, testcontainers.StopContext(context.WithoutCancel(ctx))))
		}
		return nil, fmt.Errorf("start %s: %w", req.Image, err)
	}
	return c, nil
}

func (l *Lab) connect(ctx context.Context) error {
	if err := l.connectRedis(ctx); err != nil {
		return err
	}
	return l.connectARI(ctx)
}

// connectARI makes the ARI client of a lab without Redis and waits until
// ARI answers.
func (l *Lab) connectARI(ctx context.Context) error {
	ariEndpoint, err := l.asterisk.PortEndpoint(ctx, "8088/tcp", "http")
	if err != nil {
		return fmt.Errorf("asterisk ARI port: %w", err)
	}
	l.ARIURL = ariEndpoint + "/ari"
	l.ARIEventsURL = "ws" + strings.TrimPrefix(ariEndpoint, "http") + "/ari/events"
	l.ARI = NewARI(l.ARIURL, l.ARIUser, l.ARIPassword)
	return l.waitARI(ctx)
}

// DirectARIURL is the ARI REST base at the Asterisk container's own
// address on Docker's network, e.g. http://172.17.0.3:8088/ari: what a
// daemon beside a PBX connects to, without the Docker port proxy that
// ARIURL goes through (a userland process relaying every byte, which on
// a 2-core host costs CPU and latency a real deployment does not have).
func (l *Lab) DirectARIURL(ctx context.Context) (string, error) {
	ip, err := l.asterisk.ContainerIP(ctx)
	if err != nil {
		return "", fmt.Errorf("asterisk container address: %w", err)
	}
	return "http://" + net.JoinHostPort(ip, "8088") + "/ari", nil
}

func (l *Lab) waitARI(ctx context.Context) error {
	pctx, cancel := context.WithTimeout(ctx, DefaultTimeout)
	defer cancel()
	if _, err := l.ARI.Info(pctx); err != nil {
		return fmt.Errorf("asterisk ARI at %s: %w", l.ARIURL, err)
	}
	return nil
}

// connectRedis makes the Redis client and waits for PING.
func (l *Lab) connectRedis(ctx context.Context) error {
	var err error
	if l.RedisAddr, err = l.redis.PortEndpoint(ctx, "6379/tcp", ""); err != nil {
		return fmt.Errorf("redis port: %w", err)
	}
	l.Redis = NewRedis(l.RedisAddr)
	pctx, cancel := context.WithTimeout(ctx, DefaultTimeout)
	defer cancel()
	if err := l.Redis.Ping(pctx).Err(); err != nil {
		return fmt.Errorf("redis PING at %s: %w", l.RedisAddr, err)
	}
	return nil
}

// NewRedis returns a go-redis client of the lab Redis with every option the lab cares
// about set explicitly (timeouts, RESP3, no maintenance notifications on Redis 7).
func NewRedis(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr:                     addr,
		Protocol:                 3,
		DB:                       0,
		DialTimeout:              5 * time.Second,
		ReadTimeout:              5 * time.Second,
		WriteTimeout:             5 * time.Second,
		PoolSize:                 8,
		MaxRetries:               1,
		DisableIdentity:          true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	})
}

// WriteAsteriskFile writes data to path in the Asterisk container (e.g. a stored
// recording under /var/spool/asterisk/recording).
func (l *Lab) WriteAsteriskFile(ctx context.Context, path string, data []byte) error {
	return writeContainerFile(ctx, l.asterisk, path, data)
}

// writeContainerFile copies data to path in c, readable by every user.
func writeContainerFile(ctx context.Context, c testcontainers.Container, path string, data []byte) error {
	if err := c.CopyToContainer(ctx, data, path, 0o644); err != nil {
		return fmt.Errorf("write %s in container %s: %w", path, c.GetContainerID(), err)
	}
	return nil
}

// ReadAsteriskFile copies a file out of the Asterisk container (e.g. a
// live recording once stopped, under /var/spool/asterisk/recording).
func (l *Lab) ReadAsteriskFile(ctx context.Context, path string) ([]byte, error) {
	return readContainerFile(ctx, "asterisk", l.asterisk, path)
}

// readContainerFile copies the file at path out of container c (named
// name in errors).
func readContainerFile(ctx context.Context, name string, c testcontainers.Container, path string) ([]byte, error) {
	ctx, cancel := withDeadline(ctx)
	defer cancel()
	rc, err := c.CopyFileFromContainer(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("copy %s from %s: %w", path, name, err)
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// AsteriskCLI runs an Asterisk CLI command in the container (asterisk -rx) and returns
// its output.
func (l *Lab) AsteriskCLI(ctx context.Context, command string) (string, error) {
	return containerExec(ctx, l.asterisk, fmt.Sprintf("asterisk -rx %q", command), "asterisk", "-rx", command)
}

// containerExec runs cmd in container c and returns its output; what names the
// command in errors.
func containerExec(ctx context.Context, c testcontainers.Container, what string, cmd ...string) (string, error) {
	ctx, cancel := withDeadline(ctx)
	defer cancel()
	code, out, err := c.Exec(ctx, cmd, tcexec.Multiplexed())
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	b, err := io.ReadAll(out)
	if err != nil {
		return "", fmt.Errorf("%s: read output: %w", what, err)
	}
	if code != 0 {
		return string(b), fmt.Errorf("%s: exit status %d: %s", what, code, bytes.TrimSpace(b))
	}
	return string(b), nil
}

// AsteriskLogs returns the Asterisk console output so far (for failure reports).
func (l *Lab) AsteriskLogs(ctx context.Context) (string, error) {
	return containerLogs(ctx, "asterisk", l.asterisk)
}

// containerLogs returns the output of container c, named name in errors, so far.
func containerLogs(ctx context.Context, name string, c testcontainers.Container) (string, error) {
	ctx, cancel := withDeadline(ctx)
	defer cancel()
	rc, err := c.Logs(ctx)
	if err != nil {
		return "", fmt.Errorf("%s logs: %w", name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return "", fmt.Errorf("%s logs: %w", name, err)
	}
	return string(b), nil
}

// ContainerIDs returns the ids of the lab's containers.
func (l *Lab) ContainerIDs() []string {
	var ids []string
	for _, c := range []testcontainers.Container{l.asterisk, l.redis} {
		if c != nil {
			ids = append(ids, c.GetContainerID())
		}
	}
	return ids
}

// Close closes the clients and removes both containers. It is idempotent.
func (l *Lab) Close(ctx context.Context) error {
	l.closeOnce.Do(func() {
		var errs []error
		if l.Redis != nil {
			errs = append(errs, l.Redis.Close())
		}
		if l.ARI != nil {
			l.ARI.Close()
		}
		errs = append(errs, l.terminate(ctx))
		l.closeErr = errors.Join(errs...)
	})
	return l.closeErr
}

func (l *Lab) terminate(ctx context.Context) error {
	var errs []error
	for _, c := range []testcontainers.Container{l.asterisk, l.redis} {
		if c == nil {
			continue
		}
		if err := testcontainers.TerminateContainer(c, testcontainers.StopContext(ctx), testcontainers.StopTimeout(2*time.Second)); err != nil {
			errs = append(errs, fmt.Errorf("remove container %s: %w", c.GetContainerID(), err))
		}
	}
	return errors.Join(errs...)
}

// preflight checks that Docker answers and that images exist locally (the lab never
// pulls: there may be no registry), and removes containers left by dead runs.
func preflight(ctx context.Context, images ...string) (err error) {
	defer func() {
		// Some Docker-host detection paths of testcontainers panic instead of failing;
		// a missing Docker must read as ErrDockerUnavailable, not as a crash.
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrDockerUnavailable, r)
		}
	}()
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrDockerUnavailable, err)
	}
	defer cli.Close()
	if err := chooseHost(ctx, cli); err != nil {
		return err
	}
	for _, image := range images {
		if _, err := cli.ImageInspect(ctx, image); err != nil {
			if cerrdefs.IsNotFound(err) {
				return fmt.Errorf("%w: image %s not found: run `make lab`", ErrImageMissing, image)
			}
			return fmt.Errorf("inspect image %s: %w", image, err)
		}
	}
	return removeStale(ctx, cli)
}

// chooseHost makes testcontainers reach published ports on localhost when the Docker
// engine runs on this very machine, even inside a container (a CI VM or a dev container
// with its own dockerd). testcontainers assumes a socket-mounted host engine whenever
// /.dockerenv exists and dials the default gateway, which is wrong in that case. It sets
// TESTCONTAINERS_HOST_OVERRIDE, only when it is not set already.
func chooseHost(ctx context.Context, cli *testcontainers.DockerClient) error {
	if os.Getenv("TESTCONTAINERS_HOST_OVERRIDE") != "" {
		return nil
	}
	if !strings.HasPrefix(cli.DaemonHost(), "unix://") {
		return nil
	}
	info, err := cli.Info(ctx, client.InfoOptions{})
	if err != nil {
		return fmt.Errorf("%w: docker info: %w", ErrDockerUnavailable, err)
	}
	if host, _ := os.Hostname(); host == "" || info.Info.Name != host {
		return nil
	}
	if err := os.Setenv("TESTCONTAINERS_HOST_OVERRIDE", "localhost"); err != nil {
		return fmt.Errorf("set TESTCONTAINERS_HOST_OVERRIDE: %w", err)
	}
	return nil
}

// removeStale removes lab containers whose owner process (on this host) is dead: what
// a test binary killed by -timeout or SIGKILL could not clean up itself.
func removeStale(ctx context.Context, cli *testcontainers.DockerClient) error {
	host, _ := os.Hostname()
	res, err := cli.ContainerList(ctx, client.ContainerListOptions{
		All:     true,
		Filters: client.Filters{}.Add("label", LabelLab+"=integration"),
	})
	if err != nil {
		return fmt.Errorf("list lab containers: %w", err)
	}
	for _, c := range res.Items {
		pid, err := strconv.Atoi(c.Labels[LabelPID])
		if err != nil || c.Labels[LabelHost] != host || processAlive(pid) {
			continue
		}
		fmt.Fprintf(os.Stderr, "lab: removing container %.12s left by dead process %d\n", c.ID, pid)
		if _, err := cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !cerrdefs.IsNotFound(err) {
			return fmt.Errorf("remove stale container %.12s: %w", c.ID, err)
		}
	}
	return nil
}

func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// Leftovers lists the lab containers this process started that still exist (empty
// after Close).
func Leftovers(ctx context.Context) ([]string, error) {
	ctx, cancel := withDeadline(ctx)
	defer cancel()
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDockerUnavailable, err)
	}
	defer cli.Close()
	res, err := cli.ContainerList(ctx, client.ContainerListOptions{
		All:     true,
		Filters: client.Filters{}.Add("label", LabelPID+"="+strconv.Itoa(os.Getpid())),
	})
	if err != nil {
		return nil, fmt.Errorf("list lab containers: %w", err)
	}
	var ids []string
	for _, c := range res.Items {
		ids = append(ids, fmt.Sprintf("%.12s (%s)", c.ID, c.Image))
	}
	return ids, nil
}

package lab

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
)

// callwarden's own image: callwarden:<version>, built offline by deploy/image/build.sh
// (`make image`, and `make lab`), whose --print-tag says which tag this checkout builds.
const (
	// EnvImage overrides the image the suite runs (default: the tag build.sh prints).
	EnvImage = "CALLWARDEN_IMAGE"
	// ImageBuildScript builds the image, relative to the repository root.
	ImageBuildScript = "deploy/image/build.sh"
	// ImageConfigDir is where the image reads its config: ImageConfigDir/callwarden.yaml.
	ImageConfigDir = "/etc/callwarden"
	imageHTTPPort  = "8080/tcp"
	imageStartTO   = 30 * time.Second
)

// ImageTag is the callwarden image the suite runs: $CALLWARDEN_IMAGE, else the tag
// deploy/image/build.sh builds from this checkout (its version is `git describe`, so a
// commit or an edit since the last `make lab` names an image that does not exist yet).
func ImageTag() (string, error) {
	if tag := os.Getenv(EnvImage); tag != "" {
		return tag, nil
	}
	root, err := repoRoot()
	if err != nil {
		return "", fmt.Errorf("find %s: %w (set %s)", ImageBuildScript, err, EnvImage)
	}
	out, err := exec.Command("bash", filepath.Join(root, ImageBuildScript), "--print-tag").Output()
	if err != nil {
		return "", fmt.Errorf("%s --print-tag: %w", ImageBuildScript, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// CallwardenOptions is one container of the callwarden image.
type CallwardenOptions struct {
	// Files are copied into ImageConfigDir before the start, by base name (e.g.
	// "callwarden.yaml" and the profiles file it names), readable by the image's user.
	Files map[string][]byte
	// Cmd replaces the image's CMD (default: serve --config /etc/callwarden/callwarden.yaml).
	Cmd []string
	// Env adds container environment (CALLWARDEN_*).
	Env map[string]string
}

// Callwarden is a running container of the callwarden image, started hardened: read-only
// root, every capability dropped, no new privileges, the image's own non-root user.
type Callwarden struct {
	// Image is the tag it runs.
	Image string
	// URL is the HTTP API's base, e.g. http://localhost:32770.
	URL string

	c testcontainers.Container
}

// Callwarden starts a container of the callwarden image for the test, removed when the
// test ends, and returns once its /readyz answers 200. It skips the test when Docker is
// unavailable and the suite is not required, and fails it when the image is missing
// (run `make lab` or `make image`) or the daemon never gets ready (with its logs).
func (s *Suite) Callwarden(tb testing.TB, opts CallwardenOptions) *Callwarden {
	tb.Helper()
	s.mustRun(tb)
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	cw, err := StartCallwarden(ctx, opts)
	if err != nil {
		tb.Fatalf("integration: %v", err)
	}
	tb.Cleanup(func() {
		if err := cw.Close(context.Background()); err != nil {
			tb.Errorf("integration: %v", err)
		}
	})
	return cw
}

// StartCallwarden starts a container of the image ImageTag names, as Suite.Callwarden.
// Errors wrap ErrImageMissing when the image is not there.
func StartCallwarden(ctx context.Context, opts CallwardenOptions) (*Callwarden, error) {
	tag, err := ImageTag()
	if err != nil {
		return nil, err
	}
	if err := preflight(ctx, tag); err != nil {
		if errors.Is(err, ErrImageMissing) {
			return nil, fmt.Errorf("%w (or `make image`: %s builds it)", err, ImageBuildScript)
		}
		return nil, err
	}
	config, err := tarOf(opts.Files)
	if err != nil {
		return nil, err
	}
	req := testcontainers.ContainerRequest{
		Image:        tag,
		ExposedPorts: []string{imageHTTPPort},
		Labels:       ownerLabels(),
		Env:          opts.Env,
		Cmd:          opts.Cmd,
		// The config directory is a volume the files are copied into after the create,
		// so the rest of the root can be read-only (Docker refuses a copy to a read-only
		// root, which is where testcontainers' Files go).
		ConfigModifier: func(c *container.Config) {
			c.Volumes = map[string]struct{}{ImageConfigDir: {}}
		},
		LifecycleHooks: []testcontainers.ContainerLifecycleHooks{{
			PostCreates: []testcontainers.ContainerHook{func(ctx context.Context, c testcontainers.Container) error {
				return copyInto(ctx, c.GetContainerID(), ImageConfigDir, config)
			}},
		}},
		HostConfigModifier: func(hc *container.HostConfig) {
			hc.ReadonlyRootfs = true
			hc.CapDrop = []string{"ALL"}
			hc.SecurityOpt = []string{"no-new-privileges:true"}
		},
		WaitingFor: wait.ForHTTP("/readyz").WithPort(imageHTTPPort).
			WithPollInterval(100 * time.Millisecond).WithStartupTimeout(imageStartTO),
	}
	c, err := startContainer(ctx, req)
	if err != nil {
		return nil, err
	}
	cw := &Callwarden{Image: tag, c: c}
	if cw.URL, err = c.PortEndpoint(ctx, imageHTTPPort, "http"); err != nil {
		return nil, errors.Join(fmt.Errorf("callwarden HTTP port: %w", err), cw.Close(context.WithoutCancel(ctx)))
	}
	return cw, nil
}

// tarOf is a tar archive of files by base name, each readable by every user.
func tarOf(files map[string][]byte) (*bytes.Buffer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, data := range files {
		if strings.Contains(name, "/") {
			return nil, fmt.Errorf("config file %q: a base name, not a path", name)
		}
		hdr := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: time.Now()}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	return &buf, tw.Close()
}

// copyInto extracts archive into dir of the container id.
func copyInto(ctx context.Context, id, dir string, archive *bytes.Buffer) error {
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrDockerUnavailable, err)
	}
	defer cli.Close()
	if _, err := cli.CopyToContainer(ctx, id, client.CopyToContainerOptions{
		DestinationPath: dir, Content: bytes.NewReader(archive.Bytes()),
	}); err != nil {
		return fmt.Errorf("copy the config into %s: %w", dir, err)
	}
	return nil
}

// Logs returns what the daemon wrote (its JSON log lines).
func (cw *Callwarden) Logs(ctx context.Context) (string, error) {
	return containerLogs(ctx, "callwarden", cw.c)
}

// Inspect returns the container's configuration and state as Docker reports them.
func (cw *Callwarden) Inspect(ctx context.Context) (*container.InspectResponse, error) {
	return cw.c.Inspect(ctx)
}

// Stop stops the container as `docker stop` does (SIGTERM, then SIGKILL after timeout)
// and returns the daemon's exit code.
func (cw *Callwarden) Stop(ctx context.Context, timeout time.Duration) (int, error) {
	if err := cw.c.Stop(ctx, &timeout); err != nil {
		return -1, fmt.Errorf("stop callwarden: %w", err)
	}
	st, err := cw.c.State(ctx)
	if err != nil {
		return -1, fmt.Errorf("callwarden state: %w", err)
	}
	return st.ExitCode, nil
}

// Get sends GET path to the daemon, with a bearer token when token is not empty.
func (cw *Callwarden) Get(ctx context.Context, path, token string) (int, string, error) {
	ctx, cancel := withDeadline(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cw.URL+path, nil)
	if err != nil {
		return 0, "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// Close removes the container (and its config volume).
func (cw *Callwarden) Close(ctx context.Context) error {
	if err := testcontainers.TerminateContainer(cw.c, testcontainers.StopContext(ctx)); err != nil {
		return fmt.Errorf("remove callwarden container: %w", err)
	}
	return nil
}

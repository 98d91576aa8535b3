package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/adminapi"
)

// The environment of the recordings commands: where the daemon's admin API
// is, and the caller's admin token (never a flag: flags show in ps).
const (
	EnvURL   = "CALLWARDEN_URL"
	EnvToken = "CALLWARDEN_TOKEN"
)

// The recordings commands' call bounds: JSON answers, and audio.
const (
	recordingsCallTimeout  = 30 * time.Second
	recordingsAudioTimeout = 30 * time.Minute
)

// apiFlags are the flags every recordings command takes.
type apiFlags struct {
	url, tokenFile string
}

func (e *env) newAPIFlagSet(name, synopsis string) (*flag.FlagSet, *apiFlags) {
	fs := e.newFlagSet(name, synopsis+" [--url URL] [--token-file FILE]")
	af := &apiFlags{}
	fs.StringVar(&af.url, "url", "", "the daemon's admin API (default $"+EnvURL+", else http://127.0.0.1:8080)")
	fs.StringVar(&af.tokenFile, "token-file", "", "file holding your admin token (default: $"+EnvToken+")")
	return fs, af
}

// apiClient calls the admin API as the holder of one token: what it may
// see and do is what the daemon decides for that user.
type apiClient struct {
	base, token string
	http        *http.Client
}

// client resolves the flags, then the environment, then the defaults.
func (e *env) client(af *apiFlags) (*apiClient, error) {
	base := af.url
	if base == "" {
		base = e.getenv(EnvURL)
	}
	if base == "" {
		base = "http://127.0.0.1:8080"
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--url %q: want http(s)://host[:port]", base)
	}
	token := e.getenv(EnvToken)
	if af.tokenFile != "" {
		b, err := os.ReadFile(af.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("--token-file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	if token == "" {
		return nil, errors.New("no admin token: give --token-file or $" + EnvToken)
	}
	// No proxy from the environment: the daemon is named explicitly.
	return &apiClient{base: strings.TrimSuffix(base, "/"), token: token,
		http: &http.Client{Transport: &http.Transport{Proxy: nil}}}, nil
}

// apiError is a non-2xx answer: its status and the daemon's message.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.status, http.StatusText(e.status), e.msg)
}

// do sends method path with header hdr (may be nil) and returns the
// answer, whose body the caller closes; a non-2xx answer is an *apiError.
func (c *apiClient) do(ctx context.Context, method, path string, hdr http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, nil)
	if err != nil {
		return nil, err
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		var body struct {
			Error string `json:"error"`
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(b, &body) != nil || body.Error == "" {
			body.Error = strings.TrimSpace(string(b))
		}
		return nil, &apiError{status: resp.StatusCode, msg: body.Error}
	}
	return resp, nil
}

// getJSON decodes the answer of GET path into out.
func (c *apiClient) getJSON(ctx context.Context, path string, out any) error {
	ctx, cancel := context.WithTimeout(ctx, recordingsCallTimeout)
	defer cancel()
	resp, err := c.do(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(out)
}

// recordingID parses the flags around the one ID argument of show, get,
// rm and access (flags may come before or after it).
func (e *env) recordingID(fs *flag.FlagSet, args []string) (string, int) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return "", exitOK
		}
		return "", exitBadInput
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fmt.Fprintf(e.stderr, "callwarden %s: a recording id is required\n", fs.Name())
		fs.Usage()
		return "", exitBadInput
	}
	id := rest[0]
	if code := e.parseFlags(fs, rest[1:]); code >= 0 {
		return "", code
	}
	if err := enforce.CheckID(id); err != nil {
		fmt.Fprintf(e.stderr, "callwarden %s: recording id: %v\n", fs.Name(), err)
		return "", exitBadInput
	}
	return id, -1
}

// withClient runs do with the client af describes; a bad --url or a
// missing token is bad input, an error of do a failure.
func (e *env) withClient(name string, af *apiFlags, do func(*apiClient) error) int {
	c, err := e.client(af)
	if err != nil {
		fmt.Fprintf(e.stderr, "callwarden %s: %v\n", name, err)
		return exitBadInput
	}
	if err := do(c); err != nil {
		return e.failure("%s: %v", name, err)
	}
	return exitOK
}

// recordingCommand runs a command about one recording: its flags (the
// API's, and those flags adds), the ID argument, then run with the
// client.
func (e *env) recordingCommand(name, synopsis string, args []string, flags func(*flag.FlagSet), run func(c *apiClient, id string) error) int {
	fs, af := e.newAPIFlagSet(name, synopsis)
	if flags != nil {
		flags(fs)
	}
	id, code := e.recordingID(fs, args)
	if code >= 0 {
		return code
	}
	return e.withClient(name, af, func(c *apiClient) error { return run(c, id) })
}

// recordingsList prints, as JSON lines, the recordings the token's user
// may play back, newest first; the next page's cursor goes to stderr, or
// with --all every page is printed.
func (e *env) recordingsList(ctx context.Context, args []string) int {
	fs, af := e.newAPIFlagSet("recordings ls", "recordings ls [--agent A] [--queue Q] [--from RFC3339] [--to RFC3339] [--limit N] [--cursor C] [--all]")
	agent := fs.String("agent", "", "only this agent's recordings")
	queue := fs.String("queue", "", "only this queue's recordings")
	from := fs.String("from", "", "only recordings started at or after this time (RFC 3339)")
	to := fs.String("to", "", "only recordings started before this time (RFC 3339)")
	limit := fs.Int("limit", 0, "recordings per page (default 100, at most 1000)")
	cursor := fs.String("cursor", "", "go on from a previous page's cursor")
	all := fs.Bool("all", false, "print every page")
	if code := e.parseFlags(fs, args); code >= 0 {
		return code
	}
	q := url.Values{}
	for k, v := range map[string]string{"agent": *agent, "queue": *queue, "from": *from, "to": *to, "cursor": *cursor} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if *limit != 0 {
		q.Set("limit", strconv.Itoa(*limit))
	}
	return e.withClient("recordings ls", af, func(c *apiClient) error {
		enc := json.NewEncoder(e.stdout)
		for {
			var page adminapi.RecordingsBody
			if err := c.getJSON(ctx, "/v1/recordings?"+q.Encode(), &page); err != nil {
				return err
			}
			for _, r := range page.Recordings {
				if err := enc.Encode(r); err != nil {
					return err
				}
			}
			if page.NextCursor == "" {
				return nil
			}
			if !*all {
				fmt.Fprintf(e.stderr, "more: --cursor %s\n", page.NextCursor)
				return nil
			}
			q.Set("cursor", page.NextCursor)
		}
	})
}

// recordingsShow prints one recording's metadata as JSON.
func (e *env) recordingsShow(ctx context.Context, args []string) int {
	return e.recordingCommand("recordings show", "recordings show ID", args, nil, func(c *apiClient, id string) error {
		var row adminapi.RecordingRow
		if err := c.getJSON(ctx, "/v1/recordings/"+url.PathEscape(id), &row); err != nil {
			return err
		}
		return json.NewEncoder(e.stdout).Encode(row)
	})
}

// recordingsGet writes a recording's audio to -o FILE or stdout: listened
// to (recording.playback), or with --download exported (recording.export).
func (e *env) recordingsGet(ctx context.Context, args []string) int {
	var (
		out, rng string
		download bool
	)
	flags := func(fs *flag.FlagSet) {
		fs.StringVar(&out, "o", "", "write the audio to FILE (default stdout)")
		fs.BoolVar(&download, "download", false, "export it (recording.export) rather than listen to it (recording.playback)")
		fs.StringVar(&rng, "range", "", "an HTTP byte range, e.g. bytes=0-1023")
	}
	return e.recordingCommand("recordings get", "recordings get ID [-o FILE] [--download] [--range bytes=A-B]", args, flags, func(c *apiClient, id string) error {
		ctx, cancel := context.WithTimeout(ctx, recordingsAudioTimeout)
		defer cancel()
		path := "/v1/recordings/" + url.PathEscape(id) + "/audio"
		if download {
			path += "?download=1"
		}
		hdr := http.Header{}
		if rng != "" {
			hdr.Set("Range", rng)
		}
		resp, err := c.do(ctx, http.MethodGet, path, hdr)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		w := e.stdout
		if out != "" {
			f, err := os.Create(out)
			if err != nil {
				return err
			}
			defer f.Close()
			w = f
		}
		if _, err := io.Copy(w, resp.Body); err != nil {
			return err
		}
		if out != "" {
			fmt.Fprintf(e.stderr, "%s (%s) written to %s\n", id, resp.Header.Get("Content-Type"), out)
		}
		return nil
	})
}

// recordingsRemove deletes a recording from the PBX and the catalogue
// (recording.delete).
func (e *env) recordingsRemove(ctx context.Context, args []string) int {
	return e.recordingCommand("recordings rm", "recordings rm ID", args, nil, func(c *apiClient, id string) error {
		ctx, cancel := context.WithTimeout(ctx, recordingsCallTimeout)
		defer cancel()
		resp, err := c.do(ctx, http.MethodDelete, "/v1/recordings/"+url.PathEscape(id), nil)
		if err != nil {
			return err
		}
		resp.Body.Close()
		fmt.Fprintf(e.stdout, "recording %s deleted\n", id)
		return nil
	})
}

// recordingsAccess prints a recording's access history as JSON lines.
func (e *env) recordingsAccess(ctx context.Context, args []string) int {
	return e.recordingCommand("recordings access", "recordings access ID", args, nil, func(c *apiClient, id string) error {
		var body adminapi.AccessBody
		if err := c.getJSON(ctx, "/v1/recordings/"+url.PathEscape(id)+"/access", &body); err != nil {
			return err
		}
		enc := json.NewEncoder(e.stdout)
		for _, r := range body.Accesses {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	})
}

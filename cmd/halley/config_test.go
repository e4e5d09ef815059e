package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"github.com/halleypush/halley/config"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the generated example in docs/config.md")

// printed is `halley config print --json` decoded, by setting name.
type printed map[string]config.Setting

// configPrint runs `halley config print --json args…` in process, with
// the environment the test set (t.Setenv).
func configPrint(t *testing.T, args ...string) (printed, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(append([]string{"config", "print", "--json"}, args...), &stdout, &stderr)
	if code != 0 {
		return nil, stderr.String(), code
	}
	var list []config.Setting
	if err := json.Unmarshal(stdout.Bytes(), &list); err != nil {
		t.Fatalf("config print --json: %v\n%s", err, stdout.String())
	}
	out := printed{}
	for _, s := range list {
		out[s.Name] = s
	}
	return out, stderr.String(), 0
}

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestConfigPrecedence: for a scalar (--read-batch) and a list
// (--listen), each layer overrides the ones below it: flag > env > file >
// default, and config print names the layer a value came from. The file
// spells keys with '-' (TOML) or '_' (YAML); the env list is
// comma-separated; the flag list is repeated.
func TestConfigPrecedence(t *testing.T) {
	toml := writeFile(t, "halley.toml", "read-batch = 11\nlisten = [\"127.0.0.1:9001\", \"127.0.0.1:9002\"]\n")
	yaml := writeFile(t, "halley.yaml", "read_batch: 11\nlisten:\n  - 127.0.0.1:9001\n  - 127.0.0.1:9002\n")
	flags := []string{"--read-batch", "33", "--listen", "127.0.0.1:9005", "--listen", "127.0.0.1:9006"}
	cases := []struct {
		name       string
		file       string
		env, flags bool
		batch      any
		listen     []string
		source     string
	}{
		{"default", "", false, false, 1000.0, []string{"127.0.0.1:8080"}, config.FromDefault},
		{"toml file", toml, false, false, 11.0, []string{"127.0.0.1:9001", "127.0.0.1:9002"}, config.FromFile},
		{"yaml file", yaml, false, false, 11.0, []string{"127.0.0.1:9001", "127.0.0.1:9002"}, config.FromFile},
		{"env over file", toml, true, false, 22.0, []string{"127.0.0.1:9003", "127.0.0.1:9004"}, config.FromEnv},
		{"flag over env and file", toml, true, true, 33.0, []string{"127.0.0.1:9005", "127.0.0.1:9006"}, config.FromFlag},
		{"flag over default", "", false, true, 33.0, []string{"127.0.0.1:9005", "127.0.0.1:9006"}, config.FromFlag},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var args []string
			if tc.file != "" {
				args = append(args, "--config", tc.file)
			}
			if tc.env {
				t.Setenv("HALLEY_READ_BATCH", "22")
				t.Setenv("HALLEY_LISTEN", "127.0.0.1:9003,127.0.0.1:9004")
			}
			if tc.flags {
				args = append(args, flags...)
			}
			got, stderr, code := configPrint(t, args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if s := got["read-batch"]; s.Value != tc.batch || s.Source != tc.source {
				t.Errorf("read-batch = %v from %s, want %v from %s", s.Value, s.Source, tc.batch, tc.source)
			}
			s := got["listen"]
			var listen []string
			for _, v := range s.Value.([]any) {
				listen = append(listen, v.(string))
			}
			if !reflect.DeepEqual(listen, tc.listen) || s.Source != tc.source {
				t.Errorf("listen = %v from %s, want %v from %s", listen, s.Source, tc.listen, tc.source)
			}
		})
	}
}

// TestConfigFileFromEnv: HALLEY_CONFIG names the file as --config does.
func TestConfigFileFromEnv(t *testing.T) {
	t.Setenv("HALLEY_CONFIG", writeFile(t, "halley.toml", "max-conns-per-ip = 7\n"))
	got, stderr, code := configPrint(t)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if s := got["max-conns-per-ip"]; s.Value != 7.0 || s.Source != config.FromFile {
		t.Errorf("max-conns-per-ip = %v from %s, want 7 from file", s.Value, s.Source)
	}
	if s := got["config"]; s.Source != config.FromEnv {
		t.Errorf("config from %s, want env", s.Source)
	}
}

// TestConfigFileRefusesUnknownKeys: a key that names no flag (a typo, a
// nested table, --config itself) stops the server with the key named,
// rather than running with the setting silently lost.
func TestConfigFileRefusesUnknownKeys(t *testing.T) {
	cases := []struct{ file, body, key string }{
		{"typo.toml", "max-conns-per-ipp = 3\n", `"max-conns-per-ipp"`},
		{"underscore.toml", "listen = [\"127.0.0.1:9\"]\nmax_conn_per_ip = 3\n", `"max_conn_per_ip"`},
		{"table.toml", "[engine]\nloops = 2\n", `"engine.loops"`},
		{"typo.yaml", "read_batchh: 3\n", `"read_batchh"`},
		{"config.toml", "config = \"other.toml\"\n", `"config"`},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			_, stderr, code := configPrint(t, "--config", writeFile(t, tc.file, tc.body))
			if code != 2 || !strings.Contains(stderr, tc.key) {
				t.Errorf("exit %d, stderr %q: want 2 and the key %s named", code, stderr, tc.key)
			}
		})
	}
}

// TestConfigRefusesBadValues: a value a flag refuses is refused from any
// layer, naming the setting.
func TestConfigRefusesBadValues(t *testing.T) {
	t.Run("file", func(t *testing.T) {
		_, stderr, code := configPrint(t, "--config", writeFile(t, "h.toml", "sync = \"sometimes\"\n"))
		if code != 2 || !strings.Contains(stderr, "sync") {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
	})
	t.Run("env", func(t *testing.T) {
		t.Setenv("HALLEY_CF_REPLAY_WINDOW", "-1s")
		_, stderr, code := configPrint(t)
		if code != 2 || !strings.Contains(stderr, "HALLEY_CF_REPLAY_WINDOW") || !strings.Contains(stderr, "must be positive") {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
	})
	t.Run("flag", func(t *testing.T) {
		_, _, code := configPrint(t, "--trusted-proxy", "not-an-address")
		if code != 2 {
			t.Errorf("exit %d, want 2", code)
		}
	})
	t.Run("log-format", func(t *testing.T) {
		_, stderr, code := configPrint(t, "--config", writeFile(t, "h.yaml", "log_format: xml\n"))
		if code != 2 || !strings.Contains(stderr, "log-format") || !strings.Contains(stderr, "text or json") {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
	})
}

// TestConfigPrintShowsEverySource: the text form prints one line per
// serve flag, in name order, each naming its source, and every source
// appears when each layer sets something.
func TestConfigPrintShowsEverySource(t *testing.T) {
	t.Setenv("HALLEY_LOG_FORMAT", "json")
	file := writeFile(t, "h.toml", "data = \"/var/lib/halley\"\nlog_format = \"text\"\n")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"config", "print", "--config", file, "--loops", "3"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	want := map[string]string{
		"loops":      "loops  flag  3",
		"log-format": "log-format  env  json",
		"data":       "data  file  /var/lib/halley",
		"read-batch": "read-batch  default  1000",
		"config":     "config  flag  " + file,
	}
	var names []string
	for _, line := range strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n") {
		fields := strings.Fields(line)
		names = append(names, fields[0])
		if w, ok := want[fields[0]]; ok {
			if got := strings.Join(fields, "  "); got != w {
				t.Errorf("line %q, want %q", got, w)
			}
			delete(want, fields[0])
		}
	}
	if len(want) > 0 {
		t.Errorf("lines missing: %v\n%s", want, stdout.String())
	}
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	serveFlags(fs, &serveConfig{})
	if _, err := config.Parse(fs, nil); err != nil {
		t.Fatal(err)
	}
	var all []string
	fs.VisitAll(func(f *flag.Flag) { all = append(all, f.Name) })
	if !reflect.DeepEqual(names, all) {
		t.Errorf("printed %v,\nwant every serve flag in order: %v", names, all)
	}
}

// TestConfigPrintSeesLaterFlags: a flag another package declares on
// serve's FlagSet gets its environment variable, file key and print line
// with no code of its own (as --admin-listen and --nats got theirs).
func TestConfigPrintSeesLaterFlags(t *testing.T) {
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	serveFlags(fs, &serveConfig{})
	var addr string
	fs.StringVar(&addr, "later-listen", "127.0.0.1:9090", "a flag declared later")
	t.Setenv("HALLEY_LATER_LISTEN", "127.0.0.1:9191")
	sources, err := config.Parse(fs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if addr != "127.0.0.1:9191" || sources["later-listen"] != config.FromEnv {
		t.Errorf("later-listen = %s from %s, want 127.0.0.1:9191 from env", addr, sources["later-listen"])
	}
}

// docExample brackets the generated TOML in docs/config.md.
const (
	docExampleBegin = "<!-- BEGIN example: generated by TestConfigDocExample (go test ./cmd/halley -run TestConfigDocExample -rewrite) -->\n```toml\n"
	docExampleEnd   = "```\n<!-- END example -->"
)

// TestConfigDocExample: docs/config.md's example file lists every serve
// setting with its default, as rendered from serve's FlagSet, so it
// cannot drift from the flags; and that file, loaded as a config file,
// is accepted and sets every setting to its default.
func TestConfigDocExample(t *testing.T) {
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	serveFlags(fs, &serveConfig{})
	if _, err := config.Parse(fs, nil); err != nil {
		t.Fatal(err)
	}
	example := config.ExampleTOML(fs)
	path := filepath.Join("..", "..", "docs", "config.md")
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	before, rest, ok1 := strings.Cut(string(doc), docExampleBegin)
	old, after, ok2 := strings.Cut(rest, docExampleEnd)
	if !ok1 || !ok2 {
		t.Fatalf("%s has no generated example block (%q … %q)", path, docExampleBegin, docExampleEnd)
	}
	if old != example {
		if !*rewrite {
			t.Fatalf("%s's example is stale: run go test ./cmd/halley -run TestConfigDocExample -rewrite\nwant:\n%s", path, example)
		}
		if err := os.WriteFile(path, []byte(before+docExampleBegin+example+docExampleEnd+after), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	defaults := map[string]string{}
	fs.VisitAll(func(f *flag.Flag) { defaults[f.Name] = f.Value.String() })
	loaded := flag.NewFlagSet("", flag.ContinueOnError)
	serveFlags(loaded, &serveConfig{})
	sources, err := config.Parse(loaded, []string{"--config", writeFile(t, "example.toml", example)})
	if err != nil {
		t.Fatalf("the example does not load: %v", err)
	}
	loaded.VisitAll(func(f *flag.Flag) {
		want := config.FromFile
		if f.Name == config.FileFlag {
			want = config.FromFlag
		} else if l, ok := config.Value(f).([]string); ok && len(l) == 0 {
			want = config.FromDefault // an empty TOML list sets nothing
		}
		if got := f.Value.String(); sources[f.Name] != want || f.Name != config.FileFlag && got != defaults[f.Name] {
			t.Errorf("%s = %q from %s, want %q from %s", f.Name, got, sources[f.Name], defaults[f.Name], want)
		}
	})
}

// TestServeConfigFile: the real binary, given only --config, serves the
// listen address and data directory the TOML file names (the Debian
// package's contract: `halley serve --config /etc/halley/halley.toml`).
func TestServeConfigFile(t *testing.T) {
	bin := buildHalley(t, "")
	addr := freePort(t)
	data := filepath.Join(t.TempDir(), "db")

	// A typo in the file: serve refuses to start, naming the key.
	bad := writeFile(t, "bad.toml", fmt.Sprintf("listen = [%q]\ndata = %q\nmax-conns-per-ipp = 3\n", addr, data))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "serve", "--config", bad).CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(string(out), `"max-conns-per-ipp"`) {
		t.Fatalf("serve with an unknown key: %v, want exit 2 naming it:\n%s", err, out)
	}

	file := writeFile(t, "halley.toml", fmt.Sprintf("listen = [%q]\ndata = %q\nlog-format = \"json\"\n", addr, data))
	cmd := exec.Command(bin, "serve", "--config", file)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	client := &http.Client{Timeout: 2 * time.Second}
	var status int
	for range 200 { // up to ~20 s for the server to come up
		resp, err := client.Get("http://" + addr + "/healthz")
		if err == nil {
			status = resp.StatusCode
			resp.Body.Close()
			break
		}
		select {
		case err := <-exited:
			stopped = true
			t.Fatalf("server exited: %v\n%s", err, stderr.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	if status != http.StatusOK {
		t.Fatalf("/healthz on %s: status %d\n%s", addr, status, stderr.String())
	}
	if _, err := os.Stat(data); err != nil {
		t.Errorf("the file's data directory: %v", err)
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	stopped = true
	if err := <-exited; err != nil {
		t.Errorf("graceful stop: %v\n%s", err, stderr.String())
	}
	// --log-format json from the file: every log line is a JSON object.
	for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil || rec["msg"] == nil {
			t.Errorf("log line is not slog JSON: %q", line)
		}
	}
}

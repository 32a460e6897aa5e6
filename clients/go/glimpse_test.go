package glimpse_test

// The Go client against a real mesh: the compiled Glimpse (`node packages/cli/dist/main.js up`,
// what `npm start` runs; `npm run build` first) on free ports with API keys, started by TestMain.

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/net/http2"

	glimpse "glimpse.local/clients/go"
	trainingv1 "glimpse.local/clients/go/gen/glimpse/training/v1"
)

const (
	writeKey = "go-client-write-key"
	readKey  = "go-client-read-key"
)

var (
	root = func() string { p, _ := filepath.Abs("../.."); return p }()
	base string
)

func freePorts(n int) []string {
	var ls []net.Listener
	var out []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			panic(err)
		}
		ls = append(ls, l)
		out = append(out, fmt.Sprint(l.Addr().(*net.TCPAddr).Port))
	}
	for _, l := range ls {
		l.Close()
	}
	return out
}

func TestMain(m *testing.M) {
	os.Exit(func() int {
		cli := filepath.Join(root, "packages", "cli", "dist", "main.js")
		if _, err := os.Stat(cli); err != nil {
			fmt.Fprintf(os.Stderr, "%s is missing: run `npm run build` first\n", cli)
			return 1
		}
		data, err := os.MkdirTemp("", "glimpse-go-client-")
		if err != nil {
			panic(err)
		}
		defer os.RemoveAll(data)
		p := freePorts(7)
		cmd := exec.Command("node", cli, "up")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "GLIMPSE_DATA_DIR="+data,
			"GLIMPSE_GATEWAY_PORT="+p[0], "GLIMPSE_RANKING_PORT="+p[1], "GLIMPSE_TRAINING_PORT="+p[2], "GLIMPSE_DATA_PORT="+p[3],
			"GLIMPSE_RANKING_METRICS_PORT="+p[4], "GLIMPSE_TRAINING_METRICS_PORT="+p[5], "GLIMPSE_DATA_METRICS_PORT="+p[6],
			"GLIMPSE_API_KEYS="+writeKey+":write,"+readKey+":read", "GLIMPSE_LOG_LEVEL=warn")
		out, _ := cmd.StdoutPipe()
		cmd.Stderr = cmd.Stdout
		if err := cmd.Start(); err != nil {
			panic(err)
		}
		defer func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() }()
		ready := make(chan struct{})
		var log strings.Builder
		go func() {
			s := bufio.NewScanner(out)
			for s.Scan() {
				log.WriteString(s.Text() + "\n")
				if strings.Contains(s.Text(), "Glimpse is running") {
					close(ready)
				}
			}
		}()
		select {
		case <-ready:
		case <-time.After(120 * time.Second):
			fmt.Fprintf(os.Stderr, "glimpse up did not start:\n%s", log.String())
			return 1
		}
		base = "http://127.0.0.1:" + p[0]
		return m.Run()
	}())
}

func demoPhotos(t *testing.T) []string {
	t.Helper()
	all, err := filepath.Glob(filepath.Join(root, "demo", "images", "*.jpg"))
	if err != nil || len(all) == 0 {
		t.Fatalf("no demo photos: %v", err)
	}
	sort.Strings(all)
	return all
}

func TestSearchImages(t *testing.T) {
	hits, err := glimpse.New(base).SearchImages(t.Context(), "a dog running on the grass", 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(hits) != 5 {
		t.Fatalf("want 5 hits, got %d", len(hits))
	}
	for i, h := range hits {
		if h.GetRank() != int32(i+1) || h.GetImageId() == "" || (i > 0 && h.GetRankScore() > hits[i-1].GetRankScore()) {
			t.Fatalf("hit %d out of order: %v", i, hits)
		}
	}
}

func TestSearchCaptionsOfAnUpload(t *testing.T) {
	photo := demoPhotos(t)[0]
	// The Connect protocol (the default), and gRPC over HTTP/2 without TLS.
	for name, c := range map[string]*glimpse.Client{"connect": glimpse.New(base), "grpc": glimpse.New(base, glimpse.WithGRPC(), glimpse.WithHTTPClient(h2cClient()))} {
		caps, err := c.SearchCaptionsOfFile(t.Context(), photo, 3)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(caps) != 3 || caps[0].GetText() == "" {
			t.Fatalf("%s: want 3 captions, got %v", name, caps)
		}
	}
}

func h2cClient() *http.Client {
	return &http.Client{Transport: &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}}
}

func TestBadRequestCarriesFieldViolations(t *testing.T) {
	_, err := glimpse.New(base).SearchImages(t.Context(), "", 500)
	var e *glimpse.Error
	if !errors.As(err, &e) || e.Code != connect.CodeInvalidArgument {
		t.Fatalf("want INVALID_ARGUMENT, got %v", err)
	}
	var got []string
	for _, v := range e.Violations {
		got = append(got, v.Field+":"+v.Reason)
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"query:REQUIRED", "top_k:OUT_OF_RANGE"}) {
		t.Fatalf("violations: %v", e.Violations)
	}
}

func TestWritesNeedAWriteKey(t *testing.T) {
	for key, want := range map[string]connect.Code{"": connect.CodeUnauthenticated, "not-a-key": connect.CodeUnauthenticated, readKey: connect.CodePermissionDenied} {
		_, err := glimpse.New(base, glimpse.WithAPIKey(key)).CreateFolderCollection(t.Context(), "nokey", t.TempDir())
		var e *glimpse.Error
		if !errors.As(err, &e) || e.Code != want {
			t.Fatalf("key %q: want %v, got %v", key, want, err)
		}
	}
}

func TestFolderCollectionWatchedThenSearched(t *testing.T) {
	ctx := t.Context()
	c := glimpse.New(base, glimpse.WithAPIKey(writeKey))
	folder := t.TempDir()
	photos := demoPhotos(t)[:5]
	for _, p := range photos {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(folder, filepath.Base(p)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.CreateFolderCollection(ctx, "trip", folder); err != nil {
		t.Fatal(err)
	}
	seen := 0
	for msg, err := range c.WatchCollection(ctx, "trip") {
		if err != nil {
			t.Fatal(err)
		}
		if msg.GetCollection().GetName() != "collections/trip" {
			t.Fatalf("watched %v", msg.GetCollection())
		}
		seen++
	}
	if seen == 0 {
		t.Fatal("the watch stream sent nothing")
	}
	coll, err := c.GetCollection(ctx, "trip")
	if err != nil {
		t.Fatal(err)
	}
	if coll.GetCounts().GetIndexed() != int64(len(photos)) {
		t.Fatalf("indexed %d of %d", coll.GetCounts().GetIndexed(), len(photos))
	}
	// Search serves a version once Ranking has embedded it (serving_version follows version).
	for i := 0; i < 300; i++ {
		if cur, err := c.GetCollection(ctx, "trip"); err == nil && cur.GetServingVersion() == coll.GetVersion() {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	hits, err := c.SearchCollection(ctx, "trip", "a photo", 3)
	if err != nil || len(hits) == 0 {
		t.Fatalf("search: %v %v", hits, err)
	}
	if err := c.DeleteCollection(ctx, "trip"); err != nil {
		t.Fatal(err)
	}
}

func TestModelsAndTheExample(t *testing.T) {
	c := glimpse.New(base)
	info, err := c.ModelInfo(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var versions []string
	for m, err := range c.Models(t.Context()) {
		if err != nil {
			t.Fatal(err)
		}
		versions = append(versions, m.GetVersion())
	}
	if !slices.Contains(versions, info.GetVersion()) {
		t.Fatalf("serving %s not in %v", info.GetVersion(), versions)
	}
	// The README's command, as written.
	cmd := exec.Command("go", "run", "./clients/go/examples/search", "a dog")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GLIMPSE_URL="+base)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if lines := strings.Split(strings.TrimSpace(string(out)), "\n"); len(lines) != 5 {
		t.Fatalf("want 5 lines, got:\n%s", out)
	}
}

func TestTrainingRunsByName(t *testing.T) {
	c := glimpse.New(base, glimpse.WithAPIKey(writeKey))
	_, err := c.StartTraining(t.Context(), &trainingv1.TrainingConfig{Epochs: 501})
	var e *glimpse.Error
	if !errors.As(err, &e) || len(e.Violations) != 1 || e.Violations[0].Field != "training_run.config.epochs" {
		t.Fatalf("want a violation on training_run.config.epochs, got %v", err)
	}
	// The demo pack is not a published dataset: nothing to train on, said so.
	if _, err := c.StartTraining(t.Context(), &trainingv1.TrainingConfig{Epochs: 1}); !isCode(err, connect.CodeFailedPrecondition) {
		t.Fatalf("want FAILED_PRECONDITION, got %v", err)
	}
	if _, err := c.CancelTraining(t.Context(), "trainingRuns/tr-00000000000000000-000000"); !isCode(err, connect.CodeNotFound) {
		t.Fatalf("want NOT_FOUND, got %v", err)
	}
}

func isCode(err error, code connect.Code) bool {
	var e *glimpse.Error
	return errors.As(err, &e) && e.Code == code
}

func TestRankCandidatesAndPipelineRuns(t *testing.T) {
	c := glimpse.New(base)
	ranked, err := c.RankCandidates(t.Context(), "a dog runs on the grass", nil, []string{"a red car parked in the street", "a brown dog running across a lawn"})
	if err != nil {
		t.Fatal(err)
	}
	if len(ranked) != 2 || ranked[0].GetCandidate() != "a brown dog running across a lawn" || ranked[0].GetIndex() != 1 {
		t.Fatalf("ranked: %v", ranked)
	}
	for run, err := range c.PipelineRuns(t.Context()) {
		if err != nil {
			t.Fatal(err)
		}
		t.Fatalf("a fresh mesh has no pipeline runs, got %v", run)
	}
	if _, err := c.PipelineRun(t.Context(), "pipelineRuns/pr-nope"); !isCode(err, connect.CodeNotFound) {
		t.Fatalf("an unknown run: want NOT_FOUND, got %v", err)
	}
	if _, err := c.CancelPipelineRun(t.Context(), "pipelineRuns/pr-nope"); !isCode(err, connect.CodeUnauthenticated) {
		t.Fatalf("cancel without a key: want UNAUTHENTICATED, got %v", err)
	}
}

func TestVersionIsTheAPIReleaseAndNamedInTheUserAgent(t *testing.T) {
	v, err := os.ReadFile(filepath.Join(root, "proto", "VERSION"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(v)); glimpse.Version != got {
		t.Fatalf("glimpse.Version %q, proto/VERSION %q", glimpse.Version, got)
	}
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, r.Header.Get("User-Agent"))
		http.Error(w, "no", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	c := glimpse.New(srv.URL, glimpse.WithRetries(0))
	_, _ = c.SearchImages(t.Context(), "a dog", 1)
	for _, err := range c.WatchPipelineRun(t.Context(), "pipelineRuns/pr-x") {
		_ = err
	}
	want := "glimpse-go/" + glimpse.Version
	if len(seen) != 2 || seen[0] != want || seen[1] != want {
		t.Fatalf("User-Agent of a unary call and a stream: want %q, got %q", want, seen)
	}
}

// Package glimpse is the Go client of Glimpse, image–text search: the connect-go clients
// generated from proto/ (gen/; Connect by default, gRPC with WithGRPC) and a small layer over
// them — the API key on every call, a deadline by default, UNAVAILABLE retried for the methods
// the proto marks idempotent, and errors as *Error with the code and the google.rpc.BadRequest
// field violations.
//
//	c := glimpse.New("http://localhost:8000", glimpse.WithAPIKey(os.Getenv("GLIMPSE_API_KEY")))
//	hits, err := c.SearchImages(ctx, "two kids on a beach at sunset", 5)
package glimpse

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"os"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/genproto/googleapis/rpc/errdetails"

	datav1 "glimpse.local/clients/go/gen/glimpse/data/v1"
	"glimpse.local/clients/go/gen/glimpse/data/v1/datav1connect"
	rankingv1 "glimpse.local/clients/go/gen/glimpse/ranking/v1"
	"glimpse.local/clients/go/gen/glimpse/ranking/v1/rankingv1connect"
	trainingv1 "glimpse.local/clients/go/gen/glimpse/training/v1"
	"glimpse.local/clients/go/gen/glimpse/training/v1/trainingv1connect"
)

// Client talks to one Glimpse endpoint (the gateway). Ranking, Training and Data are the
// generated clients, for what the layer does not wrap.
type Client struct {
	Ranking  rankingv1connect.RankingServiceClient
	Training trainingv1connect.TrainingServiceClient
	Data     datav1connect.DataServiceClient
}

type options struct {
	apiKey  string
	timeout time.Duration
	retries int
	http    connect.HTTPClient
	connect []connect.ClientOption
}

// Option configures New.
type Option func(*options)

// WithAPIKey sends "Authorization: Bearer <key>" (writes need one when the deployment sets keys).
func WithAPIKey(key string) Option { return func(o *options) { o.apiKey = key } }

// WithTimeout sets the deadline of each unary call that has none (default 30 s; streams have none).
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// WithRetries sets how often UNAVAILABLE is retried on an idempotent method (default 3).
func WithRetries(n int) Option { return func(o *options) { o.retries = n } }

// WithHTTPClient uses your HTTP client (TLS settings, proxies; HTTP/2 for WithGRPC).
func WithHTTPClient(c connect.HTTPClient) Option { return func(o *options) { o.http = c } }

// WithGRPC speaks gRPC instead of the Connect protocol (needs an HTTP/2 client: WithHTTPClient).
func WithGRPC() Option { return func(o *options) { o.connect = append(o.connect, connect.WithGRPC()) } }

// New returns a client of url ("http://host:port" or "https://…"; default GLIMPSE_URL, else
// http://localhost:8000). The key defaults to GLIMPSE_API_KEY.
func New(url string, opts ...Option) *Client {
	if url == "" {
		url = os.Getenv("GLIMPSE_URL")
	}
	if url == "" {
		url = "http://localhost:8000"
	}
	if !strings.Contains(url, "://") {
		url = "http://" + url
	}
	o := options{apiKey: os.Getenv("GLIMPSE_API_KEY"), timeout: 30 * time.Second, retries: 3, http: http.DefaultClient}
	for _, opt := range opts {
		opt(&o)
	}
	co := append([]connect.ClientOption{connect.WithInterceptors(&layer{o})}, o.connect...)
	return &Client{
		Ranking:  rankingv1connect.NewRankingServiceClient(o.http, url, co...),
		Training: trainingv1connect.NewTrainingServiceClient(o.http, url, co...),
		Data:     datav1connect.NewDataServiceClient(o.http, url, co...),
	}
}

// ---- errors -------------------------------------------------------------------------------

// FieldViolation is one refused field of a request.
type FieldViolation struct{ Field, Description, Reason string }

// Error is a failed call: its code, message and, for INVALID_ARGUMENT, the refused fields.
type Error struct {
	Code       connect.Code
	Message    string
	Violations []FieldViolation
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

func asError(err error) error {
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return err
	}
	out := &Error{Code: ce.Code(), Message: ce.Message()}
	for _, d := range ce.Details() {
		v, derr := d.Value()
		if bad, ok := v.(*errdetails.BadRequest); ok && derr == nil {
			for _, fv := range bad.GetFieldViolations() {
				out.Violations = append(out.Violations, FieldViolation{fv.GetField(), fv.GetDescription(), fv.GetReason()})
			}
		}
	}
	return out
}

// ---- the interceptor: key, deadline, retries, errors --------------------------------------

type layer struct{ o options }

// userAgent names this client's release to the servers (their logs, the gateway's pass-through).
var userAgent = "glimpse-go/" + Version

func (l *layer) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		req.Header().Set("User-Agent", userAgent)
		if l.o.apiKey != "" {
			req.Header().Set("Authorization", "Bearer "+l.o.apiKey)
		}
		if _, ok := ctx.Deadline(); !ok && l.o.timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, l.o.timeout)
			defer cancel()
		}
		idem := req.Spec().IdempotencyLevel != connect.IdempotencyUnknown
		for attempt := 0; ; attempt++ {
			res, err := next(ctx, req)
			if err == nil || !idem || attempt >= l.o.retries || connect.CodeOf(err) != connect.CodeUnavailable {
				if err != nil {
					return res, asError(err)
				}
				return res, nil
			}
			select {
			case <-ctx.Done():
				return nil, asError(err)
			case <-time.After(min(200*time.Millisecond<<attempt, 2*time.Second)):
			}
		}
	}
}

func (l *layer) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		conn.RequestHeader().Set("User-Agent", userAgent)
		if l.o.apiKey != "" {
			conn.RequestHeader().Set("Authorization", "Bearer "+l.o.apiKey)
		}
		return conn
	}
}

func (l *layer) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// stream yields a server stream's messages, then its error (as *Error) if it failed.
func stream[T any](s *connect.ServerStreamForClient[T], err error) iter.Seq2[*T, error] {
	return func(yield func(*T, error) bool) {
		if err != nil {
			yield(nil, asError(err))
			return
		}
		defer s.Close()
		for s.Receive() {
			if !yield(s.Msg(), nil) {
				return
			}
		}
		if err := s.Err(); err != nil {
			yield(nil, asError(err))
		}
	}
}

// pages yields every entry of a List method, page by page.
func pages[T any](ctx context.Context, fetch func(ctx context.Context, token string) ([]T, string, error)) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		token := ""
		for {
			items, next, err := fetch(ctx, token)
			if err != nil {
				var zero T
				yield(zero, err)
				return
			}
			for _, it := range items {
				if !yield(it, nil) {
					return
				}
			}
			if next == "" {
				return
			}
			token = next
		}
	}
}

// ---- search -------------------------------------------------------------------------------

// SearchImages returns gallery images for a text, best first (0 = the default count).
func (c *Client) SearchImages(ctx context.Context, query string, topK int32) ([]*rankingv1.ImageHit, error) {
	res, err := c.Ranking.SearchImages(ctx, connect.NewRequest(&rankingv1.SearchImagesRequest{Query: query, TopK: topK}))
	if err != nil {
		return nil, err
	}
	return res.Msg.GetResults(), nil
}

// SearchCaptions returns captions for an image's bytes, best first.
func (c *Client) SearchCaptions(ctx context.Context, image []byte, topK int32) ([]*rankingv1.CaptionHit, error) {
	req := &rankingv1.SearchCaptionsRequest{Image: &rankingv1.SearchCaptionsRequest_ImageBytes{ImageBytes: image}, TopK: topK}
	res, err := c.Ranking.SearchCaptions(ctx, connect.NewRequest(req))
	if err != nil {
		return nil, err
	}
	return res.Msg.GetResults(), nil
}

// SearchCaptionsOfFile reads a photo from disk and returns its captions.
func (c *Client) SearchCaptionsOfFile(ctx context.Context, path string, topK int32) ([]*rankingv1.CaptionHit, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return c.SearchCaptions(ctx, b, topK)
}

// RankCandidates ranks your own candidates — gallery image ids or texts — against a text query, best first.
func (c *Client) RankCandidates(ctx context.Context, query string, imageIDs, texts []string) ([]*rankingv1.ScoredCandidate, error) {
	req := &rankingv1.RankCandidatesRequest{Query: &rankingv1.RankCandidatesRequest_Text{Text: query}, CandidateImageIds: imageIDs, CandidateTexts: texts}
	res, err := c.Ranking.RankCandidates(ctx, connect.NewRequest(req))
	if err != nil {
		return nil, err
	}
	return res.Msg.GetResults(), nil
}

// ---- models -------------------------------------------------------------------------------

// ModelInfo describes the model serving now.
func (c *Client) ModelInfo(ctx context.Context) (*rankingv1.ModelInfo, error) {
	res, err := c.Ranking.GetModelInfo(ctx, connect.NewRequest(&rankingv1.GetModelInfoRequest{}))
	if err != nil {
		return nil, err
	}
	return res.Msg.GetModel(), nil
}

// Models lists the registered model versions.
func (c *Client) Models(ctx context.Context) iter.Seq2[*rankingv1.ModelInfo, error] {
	return pages(ctx, func(ctx context.Context, token string) ([]*rankingv1.ModelInfo, string, error) {
		res, err := c.Ranking.ListModelVersions(ctx, connect.NewRequest(&rankingv1.ListModelVersionsRequest{PageToken: token}))
		if err != nil {
			return nil, "", err
		}
		return res.Msg.GetModels(), res.Msg.GetNextPageToken(), nil
	})
}

// PromoteModel makes a registered version production (a write key).
func (c *Client) PromoteModel(ctx context.Context, version string) (*rankingv1.ModelInfo, error) {
	res, err := c.Ranking.PromoteModel(ctx, connect.NewRequest(&rankingv1.PromoteModelRequest{Version: version}))
	if err != nil {
		return nil, err
	}
	return res.Msg.GetModel(), nil
}

// ---- training -----------------------------------------------------------------------------

// StartTraining starts a run, the resource "trainingRuns/{run_id}" (a write key).
func (c *Client) StartTraining(ctx context.Context, config *trainingv1.TrainingConfig) (*trainingv1.TrainingRun, error) {
	req := &trainingv1.CreateTrainingRunRequest{TrainingRun: &trainingv1.TrainingRun{Config: config}}
	res, err := c.Training.CreateTrainingRun(ctx, connect.NewRequest(req))
	if err != nil {
		return nil, err
	}
	return res.Msg.GetTrainingRun(), nil
}

// WatchTraining yields a run's events until it ends (name "trainingRuns/…", as StartTraining returns it).
func (c *Client) WatchTraining(ctx context.Context, name string) iter.Seq2[*trainingv1.WatchTrainingRunResponse, error] {
	return stream(c.Training.WatchTrainingRun(ctx, connect.NewRequest(&trainingv1.WatchTrainingRunRequest{Name: name})))
}

// CancelTraining cancels a run; the last checkpoint is kept (a write key).
func (c *Client) CancelTraining(ctx context.Context, name string) (*trainingv1.TrainingRun, error) {
	res, err := c.Training.CancelTrainingRun(ctx, connect.NewRequest(&trainingv1.CancelTrainingRunRequest{Name: name}))
	if err != nil {
		return nil, err
	}
	return res.Msg.GetTrainingRun(), nil
}

// TrainingRuns lists the runs, newest first.
func (c *Client) TrainingRuns(ctx context.Context) iter.Seq2[*trainingv1.TrainingRun, error] {
	return pages(ctx, func(ctx context.Context, token string) ([]*trainingv1.TrainingRun, string, error) {
		res, err := c.Training.ListTrainingRuns(ctx, connect.NewRequest(&trainingv1.ListTrainingRunsRequest{PageToken: token}))
		if err != nil {
			return nil, "", err
		}
		return res.Msg.GetRuns(), res.Msg.GetNextPageToken(), nil
	})
}

// ---- pipeline runs ------------------------------------------------------------------------

// StartPipelineRun publishes a dataset version from archives, the resource "pipelineRuns/{run_id}"
// (a write key).
func (c *Client) StartPipelineRun(ctx context.Context, params *datav1.PipelineParams) (*datav1.PipelineRun, error) {
	req := &datav1.CreatePipelineRunRequest{PipelineRun: &datav1.PipelineRun{Params: params}}
	res, err := c.Data.CreatePipelineRun(ctx, connect.NewRequest(req))
	if err != nil {
		return nil, err
	}
	return res.Msg.GetPipelineRun(), nil
}

// PipelineRun gets a run by name ("pipelineRuns/…", as StartPipelineRun returns it).
func (c *Client) PipelineRun(ctx context.Context, name string) (*datav1.PipelineRun, error) {
	res, err := c.Data.GetPipelineRun(ctx, connect.NewRequest(&datav1.GetPipelineRunRequest{Name: name}))
	if err != nil {
		return nil, err
	}
	return res.Msg.GetPipelineRun(), nil
}

// WatchPipelineRun yields a pipeline run's progress until it ends (by name).
func (c *Client) WatchPipelineRun(ctx context.Context, name string) iter.Seq2[*datav1.WatchPipelineRunResponse, error] {
	return stream(c.Data.WatchPipelineRun(ctx, connect.NewRequest(&datav1.WatchPipelineRunRequest{Name: name})))
}

// PipelineRuns lists the pipeline runs, newest first.
func (c *Client) PipelineRuns(ctx context.Context) iter.Seq2[*datav1.PipelineRun, error] {
	return pages(ctx, func(ctx context.Context, token string) ([]*datav1.PipelineRun, string, error) {
		res, err := c.Data.ListPipelineRuns(ctx, connect.NewRequest(&datav1.ListPipelineRunsRequest{PageToken: token}))
		if err != nil {
			return nil, "", err
		}
		return res.Msg.GetRuns(), res.Msg.GetNextPageToken(), nil
	})
}

// CancelPipelineRun cancels a pending or running pipeline run by name (a write key).
func (c *Client) CancelPipelineRun(ctx context.Context, name string) (*datav1.PipelineRun, error) {
	res, err := c.Data.CancelPipelineRun(ctx, connect.NewRequest(&datav1.CancelPipelineRunRequest{Name: name}))
	if err != nil {
		return nil, err
	}
	return res.Msg.GetPipelineRun(), nil
}

// ---- collections --------------------------------------------------------------------------

// CreateFolderCollection makes a collection of a folder the Data service can read (a write key).
func (c *Client) CreateFolderCollection(ctx context.Context, id, folder string) (*datav1.Collection, error) {
	coll := &datav1.Collection{Source: &datav1.CollectionSource{Kind: &datav1.CollectionSource_Folder{Folder: &datav1.FolderSource{Path: folder}}}}
	res, err := c.Data.CreateCollection(ctx, connect.NewRequest(&datav1.CreateCollectionRequest{CollectionId: id, Collection: coll}))
	if err != nil {
		return nil, err
	}
	return res.Msg.GetCollection(), nil
}

// GetCollection returns a collection by id.
func (c *Client) GetCollection(ctx context.Context, id string) (*datav1.Collection, error) {
	res, err := c.Data.GetCollection(ctx, connect.NewRequest(&datav1.GetCollectionRequest{Name: "collections/" + id}))
	if err != nil {
		return nil, err
	}
	return res.Msg.GetCollection(), nil
}

// WatchCollection yields the collection as its sync goes, until it is synced.
func (c *Client) WatchCollection(ctx context.Context, id string) iter.Seq2[*datav1.WatchCollectionResponse, error] {
	return stream(c.Data.WatchCollection(ctx, connect.NewRequest(&datav1.WatchCollectionRequest{Name: "collections/" + id, UntilSynced: true})))
}

// DeleteCollection deletes a collection and everything stored for it (a write key).
func (c *Client) DeleteCollection(ctx context.Context, id string) error {
	_, err := c.Data.DeleteCollection(ctx, connect.NewRequest(&datav1.DeleteCollectionRequest{Name: "collections/" + id}))
	return err
}

// SearchCollection returns a collection's photos for a text, best first.
func (c *Client) SearchCollection(ctx context.Context, id, text string, topK int32) ([]*rankingv1.PhotoHit, error) {
	req := &rankingv1.SearchCollectionRequest{Name: "collections/" + id, Query: &rankingv1.SearchCollectionRequest_Text{Text: text}, TopK: topK}
	res, err := c.Ranking.SearchCollection(ctx, connect.NewRequest(req))
	if err != nil {
		return nil, err
	}
	return res.Msg.GetResults(), nil
}

package checkapi_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/checkapi"
)

// discardAudit is an Auditor that keeps nothing, so the benchmark
// measures the handler and not a trail.
type discardAudit struct{}

func (discardAudit) Audit(context.Context, enforce.AuditRecord) error { return nil }

// discardWriter is a ResponseWriter that reuses its header map and drops
// the body, so allocations are the handler's own.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(int)             {}

// BenchmarkCheck is the handler's cost per GET /v1/check from a loopback
// PBX (none-on-loopback), audit included, transport excluded.
func BenchmarkCheck(b *testing.B) {
	for name, query := range map[string]string{
		"allow":            allowQuery,
		"deny-protected":   "/v1/check?user=alice&action=monitor.listen&queue=hr-hotline",
		"allow-text":       allowQuery + "&format=text",
		"deny-bad-request": "/v1/check?user=alice&action=monitor.peek",
		"allow-logged":     allowQuery,
	} {
		b.Run(name, func(b *testing.B) {
			holder := &enforce.Holder{}
			holder.Store(mustSnapshot(b, testPolicy(b), 1))
			opts := checkapi.Options{
				Snapshot:  holder.Load,
				Now:       func() time.Time { return now },
				Auditor:   discardAudit{},
				CheckAuth: checkapi.CheckAuthLoopback,
				CheckRate: 1e12, CheckBurst: 1 << 30,
			}
			if name == "allow-logged" {
				// The daemon's decision line: JSON at info through a
				// buffer, as callwarden serve writes it.
				ws := &zapcore.BufferedWriteSyncer{WS: zapcore.AddSync(io.Discard), FlushInterval: time.Second}
				b.Cleanup(func() { _ = ws.Stop() })
				ec := zap.NewProductionEncoderConfig()
				ec.EncodeTime = zapcore.ISO8601TimeEncoder
				opts.DecisionLogger = zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(ec), ws, zap.InfoLevel))
			}
			h, err := checkapi.New(opts)
			if err != nil {
				b.Fatal(err)
			}
			r := httptest.NewRequest(http.MethodGet, query, nil)
			r.RemoteAddr = "127.0.0.1:40000"
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				h.ServeHTTP(w, r)
			}
		})
	}
}

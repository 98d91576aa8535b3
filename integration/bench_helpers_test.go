package integration

// What the integration benchmarks share: how a latency sample is reported.

import (
	"slices"
	"testing"
	"time"
)

// reportPercentiles reports the p50, p95 and p99 of lat and its maximum, in
// milliseconds (p50-ms, p95-ms, p99-ms, max-ms); lat is sorted in place.
func reportPercentiles(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(ms(percentile(lat, 0.50)), "p50-ms")
	b.ReportMetric(ms(percentile(lat, 0.95)), "p95-ms")
	b.ReportMetric(ms(percentile(lat, 0.99)), "p99-ms")
	b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
}

// percentile is the p-quantile (0..1) of sorted, nearest rank below: with
// at most 100 samples p99 is the maximum.
func percentile(sorted []time.Duration, p float64) time.Duration {
	return sorted[min(int(p*float64(len(sorted))), len(sorted)-1)]
}

// ms is d in milliseconds, to the microsecond.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

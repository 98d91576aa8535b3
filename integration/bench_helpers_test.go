package integration

// What the integration benchmarks share: how a latency sample is reported.

import (
	"os"
	"slices"
	"strconv"
	"strings"
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

// containerCPU is the CPU time container id has used so far, read from its
// cgroup (v1 cpuacct, else v2 cpu.stat); ok is false where neither is readable.
func containerCPU(id string) (used time.Duration, ok bool) {
	if b, err := os.ReadFile("/sys/fs/cgroup/cpuacct/docker/" + id + "/cpuacct.usage"); err == nil {
		ns, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		return time.Duration(ns), err == nil
	}
	b, err := os.ReadFile("/sys/fs/cgroup/system.slice/docker-" + id + ".scope/cpu.stat")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, found := strings.CutPrefix(line, "usage_usec "); found {
			us, err := strconv.ParseInt(v, 10, 64)
			return time.Duration(us) * time.Microsecond, err == nil
		}
	}
	return 0, false
}

// reportContainerCores reports how many cores container id used over the next
// window (pbx-cores): what the PBX's load costs it at rest, before a case.
// Nothing is reported where the container's cgroup is not readable.
func reportContainerCores(b *testing.B, id string, window time.Duration) {
	before, ok := containerCPU(id)
	if !ok {
		return
	}
	time.Sleep(window)
	after, _ := containerCPU(id)
	cores := float64(after-before) / float64(window)
	b.Cleanup(func() { b.ReportMetric(cores, "pbx-cores") }) // after the case's timer resets
}

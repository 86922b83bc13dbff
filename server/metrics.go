package server

import (
	"fmt"
	"io"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// metrics are counters exposed in the Prometheus text format.
type metrics struct {
	requests sync.Map // reqKey -> *reqStat
	bytesOut atomic.Int64
	bytesIn  atomic.Int64
}

type reqKey struct {
	method, route string
	status        int
}

type reqStat struct {
	count atomic.Int64
	nanos atomic.Int64
}

func newMetrics() *metrics { return &metrics{} }

func (m *metrics) observe(method, route string, status int, out, in int64, d time.Duration) {
	if route == "" {
		route = "other"
	}
	switch method {
	case "GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS":
	default:
		// Any token is a method to net/http: one label each would let
		// every client grow the series (and this process) without bound.
		method = "other"
	}
	m.bytesOut.Add(out)
	if in > 0 {
		m.bytesIn.Add(in)
	}
	k := reqKey{method, route, status}
	v, ok := m.requests.Load(k)
	if !ok {
		v, _ = m.requests.LoadOrStore(k, &reqStat{})
	}
	st := v.(*reqStat)
	st.count.Add(1)
	st.nanos.Add(int64(d))
}

func (m *metrics) write(w io.Writer, uploads int) {
	if h, ok := w.(interface{ Header() map[string][]string }); ok {
		h.Header()["Content-Type"] = []string{"text/plain; version=0.0.4"}
	}
	var keys []reqKey
	stats := map[reqKey]*reqStat{}
	m.requests.Range(func(k, v any) bool {
		keys = append(keys, k.(reqKey))
		stats[k.(reqKey)] = v.(*reqStat)
		return true
	})
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.route != b.route {
			return a.route < b.route
		}
		if a.method != b.method {
			return a.method < b.method
		}
		return a.status < b.status
	})
	fmt.Fprintln(w, "# HELP stevedore_registry_requests_total HTTP requests served, by method, route and status.")
	fmt.Fprintln(w, "# TYPE stevedore_registry_requests_total counter")
	for _, k := range keys {
		fmt.Fprintf(w, "stevedore_registry_requests_total{method=%q,route=%q,status=\"%d\"} %d\n", k.method, k.route, k.status, stats[k].count.Load())
	}
	fmt.Fprintln(w, "# HELP stevedore_registry_request_duration_seconds_sum Total time spent serving requests.")
	fmt.Fprintln(w, "# TYPE stevedore_registry_request_duration_seconds_sum counter")
	for _, k := range keys {
		fmt.Fprintf(w, "stevedore_registry_request_duration_seconds_sum{method=%q,route=%q,status=\"%d\"} %g\n", k.method, k.route, k.status, time.Duration(stats[k].nanos.Load()).Seconds())
	}
	fmt.Fprintln(w, "# HELP stevedore_registry_sent_bytes_total Response body bytes sent.")
	fmt.Fprintln(w, "# TYPE stevedore_registry_sent_bytes_total counter")
	fmt.Fprintf(w, "stevedore_registry_sent_bytes_total %d\n", m.bytesOut.Load())
	fmt.Fprintln(w, "# HELP stevedore_registry_received_bytes_total Request body bytes announced by clients.")
	fmt.Fprintln(w, "# TYPE stevedore_registry_received_bytes_total counter")
	fmt.Fprintf(w, "stevedore_registry_received_bytes_total %d\n", m.bytesIn.Load())
	fmt.Fprintln(w, "# HELP stevedore_registry_upload_sessions Upload sessions open in this process.")
	fmt.Fprintln(w, "# TYPE stevedore_registry_upload_sessions gauge")
	fmt.Fprintf(w, "stevedore_registry_upload_sessions %d\n", uploads)
}

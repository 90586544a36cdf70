package metrics

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sirupsen/logrus"
	"golang.org/x/net/netutil"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/internal/logging"
)

// Error kinds, the values of nsrel_errors_total's kind label.
const (
	// ErrAuditAppend is an append to the audit log that failed.
	ErrAuditAppend = "audit_append"
	// ErrAuditWarning is a problem that did not fail an append, such as
	// a checkpoint that could not be shipped.
	ErrAuditWarning = "audit_warning"
	// ErrRecord is a record written with an error: the namespaces could
	// not be read or the decision failed (on_error decided the verdict).
	ErrRecord = "record"
	// ErrContainerd is a lost or unavailable containerd event stream.
	ErrContainerd = "containerd_events"
)

// Metrics is one registry of nsrel's metrics. Its methods are safe for
// concurrent use.
type Metrics struct {
	reg        *prometheus.Registry
	records    *prometheus.CounterVec
	verdicts   *prometheus.CounterVec
	violations *prometheus.CounterVec
	errs       *prometheus.CounterVec
	unhooked   *prometheus.CounterVec
	appendDur  prometheus.Histogram
	shipped    *prometheus.CounterVec
	shipFailed *prometheus.CounterVec
	// lastShipped holds, for each destination kind, the Unix time in
	// nanoseconds of the last checkpoint that reached one, 0 for none
	// yet.
	lastShipped map[string]*atomic.Int64
	now         func() time.Time
}

// destKinds are the values of the dest label: the kinds of checkpoint
// destinations.
var destKinds = []string{audit.DestFile, audit.DestUnix, audit.DestTCP}

// New returns a registry with nsrel's metrics, the Go runtime's and the
// process's. service ("watch" or "nri") is a constant label of every
// nsrel_ metric.
func New(service string) *Metrics {
	return newAt(service, time.Now)
}

func newAt(service string, now func() time.Time) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), now: now, lastShipped: map[string]*atomic.Int64{}}
	c := prometheus.Labels{"service": service}
	m.records = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nsrel_records_total", ConstLabels: c,
		Help: "Audit records written, by stage and source."}, []string{"stage", "source"})
	m.verdicts = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nsrel_verdicts_total", ConstLabels: c,
		Help: "Start records written, by verdict (allow or deny)."}, []string{"verdict"})
	m.violations = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nsrel_violations_total", ConstLabels: c,
		Help: "Policy violations recorded, by rule."}, []string{"rule"})
	m.errs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nsrel_errors_total", ConstLabels: c,
		Help: "Errors, by kind: audit_append, audit_warning, record, containerd_events."}, []string{"kind"})
	m.unhooked = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nsrel_unhooked_containers_total", ConstLabels: c,
		Help: "Container starts this service recorded because nsrel-hook had not, by source."}, []string{"source"})
	m.appendDur = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "nsrel_audit_append_duration_seconds", ConstLabels: c,
		Help:    "Time an append to the audit log took, waiting for its lock and syncing included, shipping a checkpoint not.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}})
	m.shipped = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nsrel_checkpoints_shipped_total", ConstLabels: c,
		Help: "Checkpoints written or sent to a destination, by its kind (dest: file, unix, tcp); one per destination."}, []string{"dest"})
	m.shipFailed = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nsrel_checkpoint_ship_failures_total", ConstLabels: c,
		Help: "Checkpoints that could not be written or sent to a destination, by its kind (dest: file, unix, tcp)."}, []string{"dest"})
	var ages []prometheus.Collector
	for _, k := range destKinds {
		m.shipped.WithLabelValues(k) // every kind exists from the start, at 0
		m.shipFailed.WithLabelValues(k)
		m.lastShipped[k] = new(atomic.Int64)
		ages = append(ages, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "nsrel_checkpoint_last_shipped_age_seconds",
			ConstLabels: prometheus.Labels{"service": service, "dest": k},
			Help:        "Seconds since a checkpoint last reached a destination of the kind dest (file, unix, tcp); NaN while none did."},
			func() float64 { return m.shippedAge(k) }))
	}
	var dropped []prometheus.Collector
	for _, l := range logrus.AllLevels {
		dropped = append(dropped, prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "nsrel_diagnostics_dropped_total",
			ConstLabels: prometheus.Labels{"service": service, "level": l.String()},
			Help:        "Diagnostics entries dropped because the queue to the --log-to target was full, by the entry's level (panic, fatal, error, warning, info, debug, trace)."},
			func() float64 { return float64(logging.DroppedAt(l)) }))
	}
	for _, k := range []string{ErrAuditAppend, ErrAuditWarning, ErrRecord, ErrContainerd} {
		m.errs.WithLabelValues(k) // every kind exists from the start, at 0
	}
	for _, v := range []string{audit.VerdictAllow, audit.VerdictDeny} {
		m.verdicts.WithLabelValues(v)
	}
	m.reg.MustRegister(m.records, m.verdicts, m.violations, m.errs, m.unhooked, m.appendDur, m.shipped, m.shipFailed,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.reg.MustRegister(ages...)
	m.reg.MustRegister(dropped...)
	return m
}

func (m *Metrics) shippedAge(kind string) float64 {
	t := m.lastShipped[kind].Load()
	if t == 0 {
		return math.NaN()
	}
	return m.now().Sub(time.Unix(0, t)).Seconds()
}

// Instrument returns o with its callbacks extended to count into m:
// Written (records, verdicts, violations, unhooked containers, records
// with errors), Appended (latency, failed appends), Warn and the
// checkpoints' Sent (per destination kind). Callbacks o already had are
// still called.
func (m *Metrics) Instrument(o audit.Options) audit.Options {
	written, appended, warn := o.Written, o.Appended, o.Warn
	o.Written = func(r *audit.Record) {
		if r != nil {
			m.Record(r)
		}
		if written != nil {
			written(r)
		}
	}
	o.Appended = func(took time.Duration, err error) {
		m.appendDur.Observe(took.Seconds())
		if err != nil {
			m.Error(ErrAuditAppend)
		}
		if appended != nil {
			appended(took, err)
		}
	}
	o.Warn = func(err error) {
		m.Error(ErrAuditWarning)
		if warn != nil {
			warn(err)
		}
	}
	if o.Checkpoints != nil {
		c := *o.Checkpoints // the config's own options stay as they are
		sent := c.Sent
		c.Sent = func(cp *audit.Checkpoint, kind string, err error) {
			m.Sent(kind, err)
			if sent != nil {
				sent(cp, kind, err)
			}
		}
		o.Checkpoints = &c
	}
	return o
}

// Record counts a record written.
func (m *Metrics) Record(r *audit.Record) {
	m.records.WithLabelValues(r.Stage, r.Source).Inc()
	if audit.IsStart(r.Stage) && judgedWithError(r) {
		m.Error(ErrRecord)
	}
	if r.Stage != audit.StageStart && r.Stage != audit.StageCreateRuntime {
		return
	}
	if r.Verdict != "" {
		m.verdicts.WithLabelValues(r.Verdict).Inc()
	}
	for _, v := range r.Violations {
		m.violations.WithLabelValues(v.Rule).Inc()
	}
	if r.Stage == audit.StageStart && (r.Source == audit.SourceContainerdEvents || r.Source == audit.SourceNRI) {
		m.unhooked.WithLabelValues(r.Source).Inc()
	}
}

// judgedWithError reports whether start record r was judged without
// what it needed, on_error deciding: its namespaces (none recorded,
// the error says why) or its container's metadata could not be read.
// Not a record whose error is a note: written late after the audit log
// could not be written for a while (each such outage counted every
// start and exit again), or the NRI plugin's of a container found
// running at its registration.
func judgedWithError(r *audit.Record) bool {
	return r.Error != "" && (r.Ancestry == nil || strings.Contains(r.Error, metaNote))
}

// metaNote starts the error of a start judged without its container's
// labels or annotations (package recorder writes it).
const metaNote = "judged without the "

// Error counts an error of a kind (one of the Err constants).
func (m *Metrics) Error(kind string) { m.errs.WithLabelValues(kind).Inc() }

// Sent notes that a checkpoint was written or sent to a destination of
// kind ([audit.DestFile], [audit.DestUnix], [audit.DestTCP]) now, or
// could not be (err).
func (m *Metrics) Sent(kind string, err error) {
	last, ok := m.lastShipped[kind]
	if !ok {
		return // not a kind of nsrel's: no series of its own
	}
	if err != nil {
		m.shipFailed.WithLabelValues(kind).Inc()
		return
	}
	m.shipped.WithLabelValues(kind).Inc()
	last.Store(m.now().UnixNano())
}

// Handler returns the HTTP handler of the scrape endpoint.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Listen opens the scrape endpoint's listener on addr (host:port).
func Listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: listen on %s: %w", addr, err)
	}
	return ln, nil
}

// MaxConns bounds the connections the scrape endpoint holds at once;
// more wait to be accepted. Whoever can reach the endpoint (any local
// user on 127.0.0.1) could otherwise open connections until the daemon
// has no file descriptor left to inspect a container with, or no
// memory. A scraper needs one.
const MaxConns = 64

// Serve answers scrapes of /metrics on ln until ctx is done; it closes
// ln and returns nil then, or the error that stopped it earlier. It
// holds at most [MaxConns] connections, and none longer than a scrape
// needs: a request must come within 2 s (its headers) or 5 s (whole), a
// response go out within 30 s, and a connection is closed once answered
// (no keep-alive: one request and an idle connection held a slot for
// 30 s, three times a scrape's default timeout, and MaxConns of them
// kept every scrape out). A local user can still hold the slots with
// connections that send nothing, 2 s at a time (docs/observability.md).
func (m *Metrics) Serve(ctx context.Context, ln net.Listener) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.Handler())
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 2 * time.Second,
		ReadTimeout:       5 * time.Second,
		WriteTimeout:      30 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	srv.SetKeepAlivesEnabled(false)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(netutil.LimitListener(ln, MaxConns)) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		<-done
		return nil
	case err := <-done:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("metrics: %w", err)
	}
}

// Package metrics exports what nsrel-containerd's services (the event
// recorder and the NRI plugin) do as Prometheus metrics: the records they
// write by stage and source, verdicts, violations by rule, errors by
// kind, how long appends to the audit log take, the containers they
// recorded because no nsrel-hook record was there, checkpoints shipped
// and failed by destination kind (file, unix, tcp: only tcp leaves the
// node by itself) and how long ago one last reached each kind, and the
// diagnostics entries dropped on the way to a slow --log-to target.
// [Metrics.Instrument] hooks a set into the audit log's options
// ([audit.Options]); [Serve] answers scrapes.
//
// The names follow the Prometheus naming conventions
// (https://prometheus.io/docs/practices/naming/): the nsrel_ prefix,
// _total for counters, _seconds for durations; docs/observability.md
// lists them. Every label value comes from nsrel's own vocabulary (stage,
// source, verdict, rule and destination kind names), never from a
// container, so the number of series stays bounded.
//
// nsrel-hook does not link this package: it runs once per container
// start and keeps no listener.
package metrics

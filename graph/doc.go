// Package graph draws a [discover.Model] as one picture: the user and the
// PID namespace hierarchies side by side, parent edges inside each, an
// ownership edge from every PID namespace to its owning user namespace, and
// the containers, processes and discovery paths on the nodes.
//
// [Build] turns the model into a [Graph] (filtered with [Options].Keep,
// long chains of process-less namespaces folded with [Options].Collapse,
// processes always grouped per namespace). [Graph.DOT] writes it in
// Graphviz's DOT language, [Graph.SVG] runs dot(1) on it, and [Graph.HTML] writes
// a self-contained HTML report: the SVG inline, every namespace as a row,
// a search box (container ID, name, pod, PID or inode; also read from the
// URL fragment "#q=TEXT" on load) and details on click, with no network
// reference at all. [Graph.AddHistory] adds a container's audit history
// to the report.
//
// Everything a container or process controls is escaped twice before it is
// written: with [vocab.Escape] (control characters, invalid UTF-8), then
// for the output language (DOT string quoting, HTML entities; the report's
// data is JSON inside a script element with <, > and & escaped).
package graph

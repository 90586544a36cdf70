package vocab

// MaxStateSize is the largest container state nsrel reads: the OCI state
// a runtime passes on a hook's stdin, or a runtime's own state file
// (runc's state.json holds the container config, typically 5 to 30 KiB).
const MaxStateSize = 1 << 20

// PIDLimit is the kernel's PID_MAX_LIMIT (4M on 64-bit systems): every
// PID is below it, so a PID at or above it read from a state file, an
// event or a record is not a process.
const PIDLimit = 1 << 22

// MaxRecordedValue bounds each annotation or label value copied into an
// audit record (cut with [Cut]).
const MaxRecordedValue = 1024

// MaxRecordedError bounds the error text kept in an audit record.
const MaxRecordedError = 4096

// JoinErrors joins two notes of an audit record's error, first then
// then, with "; " (either may be empty), cut at [MaxRecordedError]:
// what is said first survives the cut.
func JoinErrors(first, then string) string {
	switch {
	case first == "":
		first = then
	case then != "":
		first += "; " + then
	}
	return Cut(first, MaxRecordedError)
}

package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/internal/vocab"
)

const usage = `nsrel-hook records and validates the user and PID namespace ancestry of
containers in a tamper-evident audit log (an OCI runtime hook).

Usage:
  nsrel-hook [--config FILE] createRuntime|poststart|poststop   < state.json
  nsrel-hook policy check FILE
  nsrel-hook [--config FILE] audit verify [--partial] [--anchor [SEQ:]HASH] [--key KEY] [--checkpoints FILE] [--host HOST] [--checkpoint-log PATH] [--shipped] [--nodes] [--node HOST] [--json] [LOG...]
  nsrel-hook [--config FILE] audit show [--container ID] [--json] [LOG]
  nsrel-hook [--config FILE] audit ack SEQ --reason TEXT [LOG]
  nsrel-hook [--config FILE] audit seal-init [--replace]
  nsrel-hook [--config FILE] audit checkpoint
  nsrel-hook --version

The runtime runs the stages, with the OCI state on stdin. createRuntime can
refuse a container: in enforce mode it exits 1 with one line naming the
violated rules. LOG defaults to the audit_log of the config; a LOG path
includes its rotated files (LOG.NNNNNNNNNNNN).

audit verify exits 0 only if the chain is intact. With --nodes or --node,
the LOGs are what a collector received from several nodes (one mixed
stream, or a file per node): each node's records (their "host") are
verified as a chain of their own, with that node's checkpoints, and a
last line says which nodes are intact. audit show prints the records
(with --container, of the containers whose ID starts with ID). audit ack
records that a damaged line (its sequence number SEQ) was looked at, so
recording goes on. audit seal-init turns on forward-secure sealing and prints the
verification key once: store it off the node. audit checkpoint emits
and ships a checkpoint when one is due by time although no container
started (run by nsrel-checkpoint.timer on a node where only the hook
writes the log).

Options:
  --config FILE        configuration (default @CONFIG@)
  -V, --version        print the version and exit
  -h, --help           print this help and exit
  --partial            verify: accept a chain whose older files were removed
  --anchor [SEQ:]HASH  verify: also require a record with this hash (the last
                       seq and hash of an earlier verify: catches records cut
                       off at the end), and with its seq, that the record
                       is that seq; one retention removed since then passes,
                       with a note
  --key KEY            verify: check the seals with this verification key
                       (@FILE reads it from FILE); may be repeated: give
                       every key of the log and no other (a seal no key
                       checks fails, and so does a checkpoint another
                       log's key seals)
  --checkpoints FILE   verify: check the log against shipped checkpoints;
                       may be repeated; with --key, only checkpoints
                       sealed by a given key count (others are ignored)
  --host HOST          verify: the host whose checkpoints to use, among
                       those --checkpoints gives (with --key, also every
                       checkpoint a given key seals, whatever its host)
  --checkpoint-log PATH
                       verify: use the checkpoints of the log the node
                       wrote at PATH (needed when the host's checkpoints
                       name several logs; with --key, checkpoints a key of
                       the log's records seals count whatever path they
                       name; needs --checkpoints)
  --shipped            verify: the LOGs are a copy a shipper delivered (a
                       collector's): put records sent out of order back in
                       chain order and drop records sent again byte for
                       byte, then verify (both are counted)
  --nodes              verify: verify every node in the LOGs (and in the
                       checkpoints) separately
  --node HOST          verify: verify only the records of node HOST; may be
                       repeated
  --json               verify, show: print JSON
  --container ID       show: only the records of containers whose ID starts
                       with ID
  --reason TEXT        ack: what you checked (required)
  --replace            seal-init: replace an existing sealing key

Examples:
  # a runc config.json hook entry
  "createRuntime": [{"path": "@HOOKPATH@",
      "args": ["nsrel-hook", "--config", "@CONFIG@", "createRuntime"],
      "timeout": 5}]

  nsrel-hook policy check @CONFIG@
  nsrel-hook audit verify                       # exit 0 only if the chain is intact
  nsrel-hook audit verify --key @/root/nsrel.key --checkpoints checkpoints.jsonl
  nsrel-hook audit verify --key @a.key --key @b.key --checkpoints ckpt.jsonl --nodes /var/log/fleet/audit.jsonl
  nsrel-hook audit show --container web-1
  nsrel-hook audit show --json | jq .verdict

Exit status: 0 success (or container allowed), 1 failure (or container
refused), 2 usage error. See docs/hook.md.
`

// printUsage prints the help with the hook and config paths of this build.
func printUsage(w io.Writer) error {
	_, err := io.WriteString(w, vocab.ExpandPaths(usage))
	return err
}

// mainWith runs the nsrel-hook command line (args without the program name)
// and returns the exit status. It reads no environment variables.
//
// With process set (the binary itself), a stage runs on the calling
// goroutine (a short-lived process spares the hand-off to a second one)
// and, when its internal deadline passes, the process ends at once with
// the on_error status (os.Exit). Without it (tests), mainWith returns the
// on_error status at the deadline while the stage's work may still go on
// in the background.
func mainWith(args []string, stdin io.Reader, stdout, stderr io.Writer, process bool) int {
	fs := flag.NewFlagSet("nsrel-hook", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	config := fs.String("config", vocab.DefaultHookConfig, "")
	version := fs.Bool("version", false, "")
	fs.BoolVar(version, "V", false, "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return vocab.Written("nsrel-hook", printUsage(stdout), stderr)
		}
		fmt.Fprintf(stderr, "nsrel-hook: %s (see --help)\n", vocab.FlagError(err))
		return 2
	}
	if *version {
		if len(fs.Args()) > 0 {
			// As lsuserns and lspidns: not a version and a command.
			fmt.Fprintf(stderr, "nsrel-hook: unexpected argument %s (see --help)\n", vocab.Quote(fs.Arg(0)))
			return 2
		}
		_, err := fmt.Fprintln(stdout, vocab.VersionLine("nsrel-hook"))
		return vocab.Written("nsrel-hook", err, stderr)
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fmt.Fprintln(stderr, "nsrel-hook: missing stage or command (see --help)")
		return 2
	}
	switch rest[0] {
	case audit.StageCreateRuntime, audit.StagePoststart, audit.StagePoststop:
		if len(rest) == 2 && isHelp(rest[1]) {
			return vocab.Written("nsrel-hook", printUsage(stdout), stderr)
		}
		if len(rest) != 1 {
			fmt.Fprintf(stderr, "nsrel-hook: unexpected arguments after %s (see --help)\n", rest[0])
			return 2
		}
		return runStage(*config, rest[0], stdin, stderr, process)
	case "policy":
		return policyCmd(*config, rest[1:], stdout, stderr)
	case "audit":
		return auditCmd(*config, rest[1:], stdout, stderr)
	case "help":
		return vocab.Written("nsrel-hook", printUsage(stdout), stderr)
	}
	fmt.Fprintf(stderr, "nsrel-hook: unknown stage or command %s (see --help)\n", vocab.GoQuote(rest[0]))
	return 2
}

// isHelp says whether a subcommand's argument asks for the help, as
// `nsrel-hook audit --help` or `nsrel-hook createRuntime -h` do.
func isHelp(arg string) bool {
	return arg == "-h" || arg == "--help" || arg == "-help" || arg == "help"
}

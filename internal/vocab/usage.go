package vocab

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// flagREs are the messages of Go's flag package and of spf13/pflag, in
// the forms FlagError knows. They are compiled on first use: every nsrel
// binary, nsrel-hook on each container start among them, imports this
// package, and most runs never print a usage error.
var flagREs = sync.OnceValue(func() (r struct{ unknown, short, needsArg, badValue, badSyntax *regexp.Regexp }) {
	r.unknown = regexp.MustCompile(`^(?:flag provided but not defined: -+|unknown flag: --)(.*)$`)
	r.short = regexp.MustCompile(`^unknown shorthand flag: '(.)' in -.*$`)
	r.needsArg = regexp.MustCompile(`^flag needs an argument: (?:-+(.*)|'(.)' in -.*)$`)
	r.badValue = regexp.MustCompile(`^invalid (?:boolean )?(?:value|argument) ("(?:[^"\\]|\\.)*") for (?:flag -+|-+|"(?:-., )?--)([A-Za-z0-9-]+)"?(?: flag)?: (.*)$`)
	r.badSyntax = regexp.MustCompile(`^bad flag syntax: (.*)$`)
	return r
})

// FlagError words a command-line parsing error the same way in every nsrel
// binary, whichever flag package parsed it, with long options spelled as
// --name: "unknown option --bogus", "option --config needs an argument",
// `invalid value "soon" for option --container-timeout: parse error`.
// Anything the user typed is escaped. The binaries print it as
// "NAME: MESSAGE (see --help)".
func FlagError(err error) string {
	msg, _, _ := strings.Cut(err.Error(), "\n")
	re := flagREs()
	if m := re.unknown.FindStringSubmatch(msg); m != nil {
		if len(m[1]) == 1 && !strings.HasPrefix(msg, "unknown flag") {
			return "unknown option -" + Escape(m[1])
		}
		return "unknown option --" + Escape(m[1])
	}
	if m := re.short.FindStringSubmatch(msg); m != nil {
		return "unknown option -" + Escape(m[1])
	}
	if m := re.needsArg.FindStringSubmatch(msg); m != nil {
		if m[2] != "" {
			return "option -" + Escape(m[2]) + " needs an argument"
		}
		return "option --" + Escape(m[1]) + " needs an argument"
	}
	if m := re.badValue.FindStringSubmatch(msg); m != nil {
		reason := m[3]
		if strings.HasPrefix(msg, "invalid boolean value") {
			reason = "must be true or false" // flag's "parse error"; pflag's words
		}
		if i := strings.LastIndex(reason, ": "); i >= 0 && strings.HasPrefix(reason, "strconv.") {
			reason = reason[i+2:] // "strconv.ParseInt: parsing "x": invalid syntax" -> "invalid syntax"
		}
		// The flag packages quote the value with %q: terminal-safe
		// already; escaping it again doubled its backslashes.
		value := Escape(m[1])
		if u, err := strconv.Unquote(m[1]); err == nil {
			value = GoQuote(u)
		}
		return "invalid value " + value + " for option --" + Escape(m[2]) + ": " + Escape(reason)
	}
	if m := re.badSyntax.FindStringSubmatch(msg); m != nil {
		return "bad option syntax " + Escape(m[1])
	}
	return Escape(msg)
}

// EmptyValue words the usage error of an option given an empty value
// where it needs a name, as [FlagError] words the others: "option
// --config needs a file, not an empty string" (what is "a file"). An
// empty path is no path: taken as one, it is the working directory.
func EmptyValue(option, what string) string {
	return "option " + option + " needs " + what + ", not an empty string"
}

// Written returns the exit status of a command named prog that wrote
// its output (a help, a version line) with err: 0, or 1 with
// "PROG: write error: REASON" on stderr, as util-linux says a failed
// write (a full disk, a closed pipe).
func Written(prog string, err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	if u := errors.Unwrap(err); u != nil {
		err = u // "no space left on device", not the file's name
	}
	fmt.Fprintf(stderr, "%s: write error: %v\n", prog, err)
	return 1
}

// CheckedWriter passes writes to W until one fails, and then keeps its
// error in Err and writes nothing more: a command that prints many
// lines checks Err once, at the end, and says the failure through
// [Written] (a report half written to a full disk is no report).
type CheckedWriter struct {
	W   io.Writer
	Err error
}

func (c *CheckedWriter) Write(p []byte) (int, error) {
	if c.Err != nil {
		return 0, c.Err
	}
	n, err := c.W.Write(p)
	c.Err = err
	return n, err
}

// ParseInterspersed parses args with fs as getopt_long does: options may
// follow operands (audit ack 12 --reason x), and "--" ends the options,
// every argument after it an operand even if it starts with "-". It
// returns the operands in order. fs.Parse alone stops at the first
// operand, and parsing what follows it again would take the operands
// after a "--" for options.
func ParseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if endedOptions(fs, args[:len(args)-len(rest)]) {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// endedOptions reports whether what fs.Parse consumed ends with the "--"
// that ends the options, not with "--" as an option's value
// (--reason --): it walks them as the flag package does.
func endedOptions(fs *flag.FlagSet, consumed []string) bool {
	for i := 0; i < len(consumed); i++ {
		a := consumed[i]
		if a == "--" {
			return true
		}
		name := strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if strings.Contains(name, "=") {
			continue
		}
		f := fs.Lookup(name)
		if f == nil {
			continue
		}
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
			continue
		}
		i++ // its value
	}
	return false
}

// Dedup returns l without repeats, in the order of their first place: a
// value given twice on a command line counts once.
func Dedup(l []string) []string {
	seen := make(map[string]bool, len(l))
	var out []string
	for _, v := range l {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

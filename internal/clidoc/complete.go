package clidoc

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/nsrel/nsrel/internal/vocab"
)

// The completion scripts know, for each word position, which subcommand
// words and which options may follow, and that an option with an
// argument takes the next word (files for FILE, LOG, SOCK and path
// arguments).

// fileArg reports whether an option's argument names a file.
func fileArg(arg string) bool {
	switch strings.ToUpper(arg) {
	case "FILE", "LOG", "SOCK", "PATH", "DIR", "KEY":
		return true
	}
	return false
}

// levels returns, for each subcommand prefix ("" for the top, "audit",
// "audit verify"), the words that may follow it and the options valid
// there. Options of the top level (those no synopsis line ties to a
// subcommand) are valid everywhere.
func (p *Page) levels() (next map[string][]string, opts map[string][]string) {
	next, opts = map[string][]string{}, map[string][]string{}
	tied := map[string]bool{}
	for _, c := range p.Commands {
		for i := range c.Path {
			pre := strings.Join(c.Path[:i], " ")
			if !contains(next[pre], c.Path[i]) {
				next[pre] = append(next[pre], c.Path[i])
			}
		}
		key := strings.Join(c.Path, " ")
		for _, f := range c.Flags {
			if !contains(opts[key], f) {
				opts[key] = append(opts[key], f)
			}
			tied[f] = true
		}
	}
	// The top level: every option for a command without subcommands;
	// else the options that no subcommand's line names, plus --config and
	// the like that the synopsis puts before the subcommand.
	for _, f := range p.Flags {
		if len(p.Commands) == 0 || !tied[f.Long] || beforeCommand(p, f.Long) {
			opts[""] = append(opts[""], f.Long)
		}
	}
	for k := range next {
		sort.Strings(next[k])
	}
	return next, opts
}

// beforeCommand reports whether some synopsis line shows the option
// before its first subcommand word ("nsrel-hook [--config FILE] audit").
func beforeCommand(p *Page, long string) bool {
	for _, s := range p.Synopsis {
		fields := strings.Fields(s)
		for _, f := range fields[1:] {
			if strings.Contains(f, "--"+long) {
				return true
			}
			if cmdWord.MatchString(f) {
				break
			}
		}
	}
	return false
}

// argOptions calls fn for each option that takes an argument, with its
// names as a shell case pattern ("--output|-o").
func (p *Page) argOptions(fn func(f Flag, names string)) {
	for _, f := range p.Flags {
		if f.Arg == "" {
			continue
		}
		names := "--" + f.Long
		if f.Short != "" {
			names += "|-" + f.Short
		}
		fn(f, names)
	}
}

// pathCases are the shell case patterns of every subcommand path
// ("/audit", "/audit/verify"), sorted.
func pathCases(next map[string][]string) []string {
	var cases []string
	for pre, words := range next {
		for _, w := range words {
			cases = append(cases, "/"+strings.ReplaceAll(strings.TrimSpace(pre+" "+w), " ", "/"))
		}
	}
	sort.Strings(cases)
	return cases
}

// prefixes are the subcommand prefixes that have words or options to
// offer, the top level ("") first.
func prefixes(next, opts map[string][]string) []string {
	keys := map[string]bool{"": true}
	for k := range next {
		keys[k] = true
	}
	for k := range opts {
		keys[k] = true
	}
	var sorted []string
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	return sorted
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (p *Page) ident() string { return strings.ReplaceAll(p.Name, "-", "_") }

// Bash writes a bash completion script (bash-completion's
// completions/NAME, or `source` it).
func (p *Page) Bash(w io.Writer) error {
	next, opts := p.levels()
	var b strings.Builder
	fmt.Fprintf(&b, "# bash completion for %s; generated from %s --help, do not edit.\n", p.Name, p.Name)
	fmt.Fprintf(&b, "_%s() {\n", p.ident())
	b.WriteString("\tlocal cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} path= w i\n")
	// The option that takes an argument: complete the argument.
	b.WriteString("\tcase $prev in\n")
	var withArg, withFile []string
	p.argOptions(func(f Flag, names string) {
		if fileArg(f.Arg) {
			withFile = append(withFile, names)
		} else {
			withArg = append(withArg, names)
		}
	})
	if len(withFile) > 0 {
		fmt.Fprintf(&b, "\t%s) COMPREPLY=($(compgen -f -- \"$cur\")); return ;;\n", strings.Join(withFile, "|"))
	}
	if len(withArg) > 0 {
		fmt.Fprintf(&b, "\t%s) COMPREPLY=(); return ;;\n", strings.Join(withArg, "|"))
	}
	b.WriteString("\tesac\n")
	// The subcommand path typed so far: words that extend a known path.
	b.WriteString("\tfor ((i = 1; i < COMP_CWORD; i++)); do\n\t\tw=${COMP_WORDS[i]}\n\t\tcase \"$path/$w\" in\n")
	if cases := pathCases(next); len(cases) > 0 {
		fmt.Fprintf(&b, "\t\t%s) path=$path/$w ;;\n", strings.Join(cases, "|"))
	}
	b.WriteString("\t\tesac\n\tdone\n")
	b.WriteString("\tlocal words\n\tcase $path in\n")
	for _, k := range prefixes(next, opts) {
		var ws []string
		ws = append(ws, next[k]...)
		ws = append(ws, p.optionWords(p.optionsAt(k, opts))...)
		fmt.Fprintf(&b, "\t%q) words=%q ;;\n", "/"+strings.ReplaceAll(k, " ", "/"), strings.Join(vocab.Dedup(ws), " "))
	}
	b.WriteString("\tesac\n")
	b.WriteString("\tCOMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n}\n")
	fmt.Fprintf(&b, "complete -o default -F _%s %s\n", p.ident(), p.Name)
	_, err := io.WriteString(w, strings.ReplaceAll(b.String(), `"/"`, `""`))
	return err
}

// optionsAt returns the options valid after the subcommand prefix k: a
// command with subcommands takes its top-level options (--config) before
// the subcommand only, as Go's flag parsing does.
func (p *Page) optionsAt(k string, opts map[string][]string) []string {
	if k == "" {
		return opts[""]
	}
	return opts[k]
}

func (p *Page) optionWords(longs []string) []string {
	var out []string
	for _, l := range longs {
		f := p.Flag(l)
		if f == nil {
			continue
		}
		out = append(out, "--"+f.Long)
		if f.Short != "" {
			out = append(out, "-"+f.Short)
		}
	}
	return out
}

// Zsh writes a zsh completion function (a file _NAME on $fpath, or
// `source` it after compinit).
func (p *Page) Zsh(w io.Writer) error {
	next, opts := p.levels()
	var b strings.Builder
	fmt.Fprintf(&b, "#compdef %s\n# zsh completion for %s; generated from %s --help, do not edit.\n", p.Name, p.Name, p.Name)
	fmt.Fprintf(&b, "_%s() {\n", p.ident())
	b.WriteString("\tlocal path= w i\n\tlocal -a cands\n")
	b.WriteString("\tcase ${words[CURRENT-1]} in\n")
	p.argOptions(func(f Flag, names string) {
		if fileArg(f.Arg) {
			fmt.Fprintf(&b, "\t%s) _files; return ;;\n", names)
		} else {
			fmt.Fprintf(&b, "\t%s) _message %s; return ;;\n", names, zquote(f.Arg))
		}
	})
	b.WriteString("\tesac\n")
	b.WriteString("\tfor ((i = 2; i < CURRENT; i++)); do\n\t\tw=${words[i]}\n\t\tcase \"$path/$w\" in\n")
	if cases := pathCases(next); len(cases) > 0 {
		fmt.Fprintf(&b, "\t\t%s) path=$path/$w ;;\n", strings.Join(cases, "|"))
	}
	b.WriteString("\t\tesac\n\tdone\n\tcase $path in\n")
	for _, k := range prefixes(next, opts) {
		var cands []string
		for _, w := range next[k] {
			cands = append(cands, zquote(w+":subcommand"))
		}
		for _, l := range p.optionsAt(k, opts) {
			f := p.Flag(l)
			if f == nil {
				continue
			}
			cands = append(cands, zquote("--"+f.Long+":"+zdesc(f.Help)))
			if f.Short != "" {
				cands = append(cands, zquote("-"+f.Short+":"+zdesc(f.Help)))
			}
		}
		label := "/" + strings.ReplaceAll(k, " ", "/")
		if k == "" {
			label = ""
		}
		fmt.Fprintf(&b, "\t%s) cands=(%s) ;;\n", zquote(label), strings.Join(cands, " "))
	}
	b.WriteString("\tesac\n")
	b.WriteString("\t_describe -t commands " + zquote(p.Name) + " cands\n}\n")
	// Autoloaded from $fpath (compinit reads the #compdef line), the file
	// is the body of _NAME: its first run only defines the function
	// above, so it calls it too, or the first Tab of a session would
	// complete nothing. Either way it registers that function for the
	// command: its name is not the file's where NAME has a dash
	// (_nsrel_hook in _nsrel-hook), and the file's function would
	// otherwise run this body again at the next Tab and offer nothing.
	fmt.Fprintf(&b, "compdef _%s %s\nif [[ ${zsh_eval_context[-1]} == loadautofunc ]]; then\n\t_%s \"$@\"\nfi\n", p.ident(), p.Name, p.ident())
	_, err := io.WriteString(w, b.String())
	return err
}

func zquote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// zdesc is an option's help as a _describe description: one clause, no
// colons (they separate the value from its description).
func zdesc(help string) string {
	if i := strings.IndexAny(help, ";("); i > 0 {
		help = help[:i]
	}
	return strings.TrimSpace(strings.ReplaceAll(help, ":", ""))
}

// Fish writes a fish completion script (vendor_completions.d/NAME.fish).
func (p *Page) Fish(w io.Writer) error {
	next, opts := p.levels()
	var b strings.Builder
	fmt.Fprintf(&b, "# fish completion for %s; generated from %s --help, do not edit.\n", p.Name, p.Name)
	fmt.Fprintf(&b, "complete -c %s -f\n", p.Name)
	// Subcommand words: offered where the words typed so far end a prefix.
	var pres []string
	for k := range next {
		pres = append(pres, k)
	}
	sort.Strings(pres)
	for _, pre := range pres {
		cond := fishAfter(pre, next)
		for _, w := range next[pre] {
			fmt.Fprintf(&b, "complete -c %s -n %s -a %s\n", p.Name, zquote(cond), w)
		}
	}
	for _, f := range p.Flags {
		args := []string{"complete", "-c", p.Name, "-l", f.Long}
		if f.Short != "" {
			args = append(args, "-s", f.Short)
		}
		if f.Arg != "" {
			if fileArg(f.Arg) {
				args = append(args, "-r", "-F")
			} else {
				args = append(args, "-x")
			}
		}
		// An option tied to subcommands is offered after them only; one
		// of a command with subcommands (--config) before them only.
		var where, conds []string
		for k, ls := range opts {
			if k != "" && contains(ls, f.Long) {
				parts := strings.Fields(k)
				where = append(where, parts[len(parts)-1])
			}
		}
		if contains(opts[""], f.Long) && len(next[""]) > 0 {
			conds = append(conds, "not __fish_seen_subcommand_from "+strings.Join(next[""], " "))
		}
		if len(where) > 0 {
			sort.Strings(where)
			conds = append(conds, "__fish_seen_subcommand_from "+strings.Join(vocab.Dedup(where), " "))
		}
		if len(conds) > 0 {
			args = append(args, "-n", zquote(strings.Join(conds, "; or ")))
		}
		args = append(args, "-d", zquote(zdesc(f.Help)))
		b.WriteString(strings.Join(args, " ") + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// fishAfter is the fish condition "the words typed so far are exactly the
// subcommand prefix pre" (options in between are ignored).
func fishAfter(pre string, next map[string][]string) string {
	if pre == "" {
		var all []string
		for _, ws := range next {
			all = append(all, ws...)
		}
		sort.Strings(all)
		return "not __fish_seen_subcommand_from " + strings.Join(vocab.Dedup(all), " ")
	}
	parts := strings.Fields(pre)
	cond := "__fish_seen_subcommand_from " + parts[len(parts)-1]
	if ws := next[pre]; len(ws) > 0 {
		cond += "; and not __fish_seen_subcommand_from " + strings.Join(ws, " ")
	}
	return cond
}

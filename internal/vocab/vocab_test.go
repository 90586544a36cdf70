package vocab

import (
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestContainerdAddress(t *testing.T) {
	t.Setenv("CONTAINERD_ADDRESS", "")
	if got := ContainerdAddress(""); got != DefaultContainerdAddress {
		t.Errorf("ContainerdAddress(\"\") = %q", got)
	}
	t.Setenv("CONTAINERD_ADDRESS", "/x.sock")
	if got := ContainerdAddress(""); got != "/x.sock" {
		t.Errorf("ContainerdAddress with env = %q", got)
	}
	if got := ContainerdAddress("/flag.sock"); got != "/flag.sock" {
		t.Errorf("ContainerdAddress(flag) = %q", got)
	}
}

func TestPodName(t *testing.T) {
	for _, tc := range []struct {
		labels map[string]string
		want   string
	}{
		{nil, ""},
		{map[string]string{LabelPodName: "web-0"}, "web-0"},
		{map[string]string{LabelPodName: "web-0", LabelPodNamespace: "shop"}, "shop/web-0"},
		{map[string]string{LabelPodNamespace: "shop"}, ""},
		{map[string]string{AnnotationSandboxName: "db-1", AnnotationSandboxNamespace: "prod"}, "prod/db-1"},
		// Both pairs: containerd's CRI keys name the pod (the other is
		// a pod's annotation pod_annotations passed, its author's).
		{map[string]string{AnnotationSandboxName: "db-1", AnnotationSandboxNamespace: "prod", LabelPodName: "web-0", LabelPodNamespace: "shop"}, "prod/db-1"},
		// No Kubernetes name holds a slash: "web-0/app" in kube-system
		// read as pod kube-system/web-0, container app.
		{map[string]string{LabelPodName: "web-0/app", LabelPodNamespace: "kube-system"}, ""},
		{map[string]string{LabelPodName: "web-0", LabelPodNamespace: "kube/system"}, ""},
		// containerd's pair and a CRI-O key a pod's author added (or the
		// reverse): the author's pod.* pair was read; no name now.
		{map[string]string{AnnotationSandboxName: "web-0", AnnotationSandboxNamespace: "tenant", "io.kubernetes.cri-o.x": "", LabelPodName: "kube-apiserver-node1", LabelPodNamespace: "kube-system"}, ""},
	} {
		if got := PodName(tc.labels); got != tc.want {
			t.Errorf("PodName(%v) = %q, want %q", tc.labels, got, tc.want)
		}
	}
}

func TestContainerName(t *testing.T) {
	for _, tc := range []struct {
		keys map[string]string
		want string
	}{
		{nil, ""},
		{map[string]string{LabelPodName: "web-0", LabelPodNamespace: "shop"}, "shop/web-0"},
		{map[string]string{LabelPodName: "web-0", LabelPodNamespace: "shop", LabelContainerName: "app"}, "shop/web-0/app"},
		{map[string]string{AnnotationSandboxName: "db-1", AnnotationSandboxNamespace: "prod", AnnotationContainerName: "pg"}, "prod/db-1/pg"},
		// No pod namespace: "web-0/app" would read as a pod.
		{map[string]string{LabelPodName: "web-0", LabelContainerName: "app"}, "web-0"},
		{map[string]string{LabelPodName: "web-0", LabelPodNamespace: "shop", LabelContainerName: "a/b"}, "shop/web-0"},
		{map[string]string{LabelNerdctlName: "nginx"}, "nginx"},
		// No nerdctl name holds a slash: this one read as a pod's.
		{map[string]string{LabelNerdctlName: "kube-system/web-0/app"}, ""},
		{map[string]string{LabelPodName: "web-0/app", LabelPodNamespace: "kube-system", LabelNerdctlName: "kube-system/web-0/app"}, ""},
		// containerd's keys with a pod's claims of the kubelet's: the
		// CRI keys name it; a sandbox has no container name.
		{map[string]string{AnnotationSandboxName: "web-0", AnnotationSandboxNamespace: "shop", AnnotationContainerName: "app",
			LabelPodName: "evilpod", LabelPodNamespace: "kube-system", LabelContainerName: "evilctr"}, "shop/web-0/app"},
		{map[string]string{CRIAnnotationPrefix + "container-type": "sandbox", AnnotationSandboxName: "web-0", AnnotationSandboxNamespace: "shop", LabelContainerName: "evilctr"}, "shop/web-0"},
		// CRI-O sets the kubelet's keys itself, and no io.kubernetes.cri.*
		// key.
		{map[string]string{"io.kubernetes.cri-o.ContainerType": "container", LabelPodName: "web-0", LabelPodNamespace: "shop", LabelContainerName: "app"}, "shop/web-0/app"},
		// Keys of both engines: a pod's author added the other's (an
		// io.kubernetes.cri.* key under CRI-O, an io.kubernetes.cri-o.*
		// one under containerd, where they made its own pod.* keys
		// read): no name, rather than one the author chose.
		{map[string]string{"io.kubernetes.cri-o.ContainerType": "container", LabelPodName: "web-0", LabelPodNamespace: "shop", LabelContainerName: "app",
			AnnotationSandboxName: "coredns", AnnotationSandboxNamespace: "kube-system"}, ""},
		{map[string]string{AnnotationSandboxName: "web-0", AnnotationSandboxNamespace: "tenant", AnnotationContainerName: "app",
			"io.kubernetes.cri-o.x": "", LabelPodName: "kube-apiserver-node1", LabelPodNamespace: "kube-system", LabelContainerName: "kube-apiserver", LabelNerdctlName: "apiserver"}, ""},
		{map[string]string{LabelContainerName: "app"}, ""},
	} {
		if got := ContainerName(tc.keys); got != tc.want {
			t.Errorf("ContainerName(%v) = %q, want %q", tc.keys, got, tc.want)
		}
	}
}

func TestCut(t *testing.T) {
	long := strings.Repeat("a", MaxRecordedValue-1) + "é" // cut inside "é"
	for _, tc := range []struct{ in, want string }{
		{long, strings.Repeat("a", MaxRecordedValue-1)},
		{"ab\xc3\x28", "ab\uFFFD("},
		{"x\x1b[31m\n\x00y", "x\x1b[31m\n\x00y"},
	} {
		if got := Cut(tc.in, MaxRecordedValue); got != tc.want {
			t.Errorf("Cut(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzCut(f *testing.F) {
	f.Add("abc", 2)
	f.Add("ab\xc3\xa9", 3)
	f.Add("\xff\xfe", 1)
	f.Fuzz(func(t *testing.T, s string, n int) {
		if n < 0 || n > 1<<16 {
			return
		}
		got := Cut(s, n)
		if !utf8.ValidString(got) {
			t.Errorf("Cut(%q, %d) = %q: invalid UTF-8", s, n, got)
		}
		if utf8.ValidString(s) && len(got) > n {
			t.Errorf("Cut(%q, %d) = %q: longer than %d", s, n, got, n)
		}
	})
}

func TestEscape(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"sleep", "sleep"},
		{"a b", "a b"},
		{"x\ny", `x\x0ay`},
		{"\x1b[31mred", `\x1b[31mred`},
		{`back\slash`, `back\\slash`},
		{"bad\xffutf8", `bad\xffutf8`},
		{"bidi\u202eevil", `bidi\u{202e}evil`},
		{"zero\u200bwidth", `zero\u{200b}width`},
		{"café", "café"},
		{"\x7f", `\x7f`},
		{"\u0085", `\u{85}`},
		{"lost\uFFFDbytes", `lost\u{fffd}bytes`},
		{"a\u034fb", `a\u{34f}b`},
		{"x\ufe0f\U000E0100\u3164\uffa0\u115f\u17b4\u2800", `x\u{fe0f}\u{e0100}\u{3164}\u{ffa0}\u{115f}\u{17b4}\u{2800}`},
		{"\u0301é\u0915\u093f", "\u0301é\u0915\u093f"}, // combining marks of letters stay
		// A variation selector in a variation sequence is text; alone,
		// after ASCII or after another, it shows as nothing.
		{"❤\ufe0f-web 葛\U000E0100城 ᠮ\u180b", "❤\ufe0f-web 葛\U000E0100城 ᠮ\u180b"},
		{"\ufe0fweb", `\u{fe0f}web`},
		{"❤\ufe0f\ufe0f", "❤\ufe0f\\u{fe0f}"},
	} {
		if got := Escape(tc.in); got != tc.want {
			t.Errorf("Escape(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzEscape(f *testing.F) {
	f.Add("sleep")
	f.Add("\x1b]0;title\x07\u202e\xff\\")
	f.Fuzz(func(t *testing.T, s string) {
		e := Escape(s)
		if !utf8.ValidString(e) {
			t.Fatalf("Escape(%q) = %q is not UTF-8", s, e)
		}
		for _, r := range e {
			if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\u202e' || r == '\u034f' || r == '\ufffd' {
				t.Fatalf("Escape(%q) = %q keeps %U", s, e, r)
			}
		}
		if !strings.Contains(s, `\`) && !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r >= 0x7f }) && e != s {
			t.Fatalf("Escape changed clean %q to %q", s, e)
		}
	})
}

func TestAppendSafeJSON(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"id":"plain","n":1}`, `{"id":"plain","n":1}`},
		{`{"id":"ünïcödé 日本"}`, `{"id":"ünïcödé 日本"}`},
		{"{\"id\":\"del\x7fX\u009b2J\"}", `{"id":"del\u007fX\u009b2J"}`},
		{"{\"p\":\"a\u202eb\u200bc\"}", `{"p":"a\u202eb\u200bc"}`},
		{"{\"p\":\"tag\U000E0041\"}", `{"p":"tag\udb40\udc41"}`},
		{"{\"p\":\"bad\xffbyte\"}", `{"p":"bad\ufffdbyte"}`},
		// Runes that show as nothing, as Escape spells them; an emoji's
		// variation selector stays.
		{"{\"id\":\"web\u034f1\u3164\ufe0f ❤\ufe0f\"}", "{\"id\":\"web\\u034f1\\u3164\\ufe0f ❤\ufe0f\"}"},
		{`{"esc":"already \u001b escaped \\ \""}`, `{"esc":"already \u001b escaped \\ \""}`},
	} {
		if got := string(AppendSafeJSON(nil, []byte(tc.in))); got != tc.want {
			t.Errorf("AppendSafeJSON(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// FuzzAppendSafeJSON: the result decodes to the same value as the input
// (when the input is valid JSON) and holds nothing but printable runes
// and ASCII.
func FuzzAppendSafeJSON(f *testing.F) {
	f.Add([]byte(`{"id":"x","a":{"k":"v\u0000"}}`))
	f.Add([]byte("{\"id\":\"del\x7f\u009b\u202e\U000E0041\"}"))
	f.Fuzz(func(t *testing.T, in []byte) {
		out := AppendSafeJSON(nil, in)
		for _, r := range string(out) {
			if r >= 0x7f && (!unicode.IsPrint(r) || unicode.Is(unicode.Cf, r)) {
				t.Fatalf("unprintable rune %U left in %q", r, out)
			}
		}
		if !utf8.Valid(in) {
			return
		}
		var a, b any
		if json.Unmarshal(in, &a) != nil {
			return
		}
		if err := json.Unmarshal(out, &b); err != nil || !reflect.DeepEqual(a, b) {
			t.Fatalf("%q -> %q: %v, values differ", in, out, err)
		}
	})
}

// TestWriteSafeJSON: what encoding/json leaves raw (a bidi override, a
// C1 control, DEL) is written escaped, and the JSON is the same value.
func TestWriteSafeJSON(t *testing.T) {
	v := map[string]string{"name": "A\u202eB\u009b31mC\x7f"}
	for _, indent := range []bool{false, true} {
		var b strings.Builder
		if err := WriteSafeJSON(&b, v, indent); err != nil {
			t.Fatal(err)
		}
		out := b.String()
		var back map[string]string
		if strings.ContainsAny(out, "\u202e\u009b\x7f") || !strings.HasSuffix(out, "\n") || json.Unmarshal([]byte(out), &back) != nil || back["name"] != v["name"] {
			t.Errorf("indent %v: %q", indent, out)
		}
	}
}

func TestSplitContainerName(t *testing.T) {
	for _, tc := range []struct{ name, pod, ctr string }{
		{"", "", ""},
		{"db", "", "db"},
		{"shop/web-0", "shop/web-0", ""},
		{"shop/web-0/app", "shop/web-0", "app"},
		{"a/b/c/d", "", "a/b/c/d"},
	} {
		if pod, ctr := SplitContainerName(tc.name); pod != tc.pod || ctr != tc.ctr {
			t.Errorf("SplitContainerName(%q) = %q, %q, want %q, %q", tc.name, pod, ctr, tc.pod, tc.ctr)
		}
	}
}

// TestQuoteItem: a name that could pass for more than one item of a
// list, or hide its own end, is quoted; a plain one is not.
func TestQuoteItem(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"systemd", "systemd"},
		{"kworker/0:1H", "kworker/0:1H"},
		{"runc:[2:INIT]", "runc:[2:INIT]"},
		{"(sd-pam)", "(sd-pam)"},
		{"sh, 1 systemd", `"sh, 1 systemd"`},
		{"a;b", `"a;b"`},
		{"two words", `"two words"`},
		{"nb\u00a0sp", `"nb\u{a0}sp"`},
		{"\x1b[31m", `"\x1b[31m"`},
		{`q"uote`, `"q\"uote"`},
		{`back\slash`, `"back\\slash"`},
		{"", `""`},
	} {
		if got := QuoteItem(tc.in); got != tc.want {
			t.Errorf("QuoteItem(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestQuote(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"png", `"png"`},
		{"\x1bdot", `"\x1bdot"`},
		{`a"b\c`, `"a\"b\\c"`},
		{"x\u202e", `"x\u{202e}"`},
	} {
		if got := Quote(tc.in); got != tc.want {
			t.Errorf("Quote(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// TestShellQuote gives each string to sh as ShellQuote quotes it: the
// shell must read it back as one word, unchanged.
func TestShellQuote(t *testing.T) {
	const sh = "/bin/sh" // POSIX requires it
	for _, s := range []string{"/var/log/nsrel/audit.jsonl", "other log.jsonl", "it's", "'", "''", "$(id)", "a\"b", "`x`", "*", "a\\b", "~root", "a\nb", "-", "é"} {
		out, err := exec.Command(sh, "-c", `printf '%s|' `+ShellQuote(s)).Output()
		if err != nil || string(out) != s+"|" {
			t.Errorf("sh read %s as %q (%v); want %q, one word", ShellQuote(s), out, err, s)
		}
	}
	if got := ShellQuote("/var/log/nsrel/audit.jsonl"); got != "/var/log/nsrel/audit.jsonl" {
		t.Errorf("a plain path quoted: %s", got)
	}
}

// TestOneLine: joined errors are separated by "; ", also under a wrap;
// a newline inside one message is escaped, not taken for a join's.
// FuzzPrintableOnce: what Printable and Escape return is printed as it
// is by Printable: a message that holds it is not quoted again. A
// U+FFFD (a state's invalid UTF-8) stayed in Printable's quoted form,
// so the refusal line holding the quoted ID was quoted whole again, its
// backslashes doubled.
func FuzzPrintableOnce(f *testing.F) {
	for _, s := range []string{"web", "web\uFFFD", "web\xff", "\x1b[2J\u202e", `a\"b`, "\u00a0", "a\u034fb", "\U000E0100\u2800"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p := Printable(s)
		if line := "container " + p + " refused"; Printable(line) != line {
			t.Fatalf("Printable(%q) = %s, quoted again in a line: %s", s, p, Printable(line))
		}
		if e := Escape(s); Printable(e) != e {
			t.Fatalf("Escape(%q) = %s, quoted by Printable: %s", s, e, Printable(e))
		}
		if p != s {
			if u, err := strconv.Unquote(p); err != nil || u != s {
				t.Fatalf("Printable(%q) = %s does not unquote to it (%q, %v)", s, p, u, err)
			}
		}
	})
}

func TestOneLine(t *testing.T) {
	nl := errors.New("open /tmp/a\nb: no such file or directory")
	joined := errors.Join(errors.New("first"), errors.New("second"))
	for _, tc := range []struct {
		err  error
		want string
	}{
		{errors.New("plain"), "plain"},
		{joined, "first; second"},
		{fmt.Errorf("config: %w", joined), "config: first; second"},
		{errors.Join(fmt.Errorf("config: %w", joined), errors.New("third")), "config: first; second; third"},
		{nl, `"open /tmp/a\nb: no such file or directory"`},
		{errors.Join(nl, errors.New("x")), `"open /tmp/a\nb: no such file or directory; x"`},
		{fmt.Errorf("%w (retried)", joined), `"first\nsecond (retried)"`},
	} {
		if got := OneLine(tc.err); got != tc.want {
			t.Errorf("OneLine(%q) = %s, want %s", tc.err, got, tc.want)
		}
	}
}

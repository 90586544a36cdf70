package nsrel_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/nsrel"
)

func TestTypeNames(t *testing.T) {
	for _, typ := range nsrel.Types {
		got, err := nsrel.ParseType(typ.String())
		if err != nil || got != typ {
			t.Errorf("ParseType(%q) = %v, %v", typ.String(), got, err)
		}
		if typ.Hierarchical() != (typ == nsrel.TypeUser || typ == nsrel.TypePID) {
			t.Errorf("%v.Hierarchical() = %v", typ, typ.Hierarchical())
		}
	}
	if got, _ := nsrel.ParseType("Mount"); got != nsrel.TypeMount {
		t.Errorf("ParseType(Mount) = %v", got)
	}
	if _, err := nsrel.ParseType("bogus"); err == nil {
		t.Error("ParseType(bogus) succeeded")
	}
	if s := nsrel.Type(3).String(); s != "Type(0x3)" {
		t.Errorf("Type(3).String() = %q", s)
	}
}

func TestParseName(t *testing.T) {
	good := map[string]nsrel.Name{
		"user:[4026531837]":          {Type: nsrel.TypeUser, Ino: 4026531837},
		"pid:[4026531836]":           {Type: nsrel.TypePID, Ino: 4026531836},
		"mnt:[1]":                    {Type: nsrel.TypeMount, Ino: 1},
		"time:[0]":                   {Type: nsrel.TypeTime, Ino: 0},
		"net:[18446744073709551615]": {Type: nsrel.TypeNet, Ino: 1<<64 - 1},
	}
	for s, want := range good {
		got, err := nsrel.ParseName(s)
		if err != nil || got != want {
			t.Errorf("ParseName(%q) = %v, %v; want %v", s, got, err, want)
		}
		if got.String() != s {
			t.Errorf("%v.String() = %q, want %q", got, got.String(), s)
		}
	}
	bad := []string{"", "user", "user:", "user:[]", "user:[12", "user:12]", "user:[-1]", "user:[+1]",
		"user:[01]", "user:[1 ]", " user:[1]", "user:[1] ", "mount:[1]", "USER:[1]", "foo:[1]",
		"user:[18446744073709551616]", "user:[1]]", "user:[[1]", "pipe:[1234]", "anon_inode:[eventfd]"}
	for _, s := range bad {
		if got, err := nsrel.ParseName(s); err == nil {
			t.Errorf("ParseName(%q) = %v, want error", s, got)
		}
	}
}

func FuzzParseName(f *testing.F) {
	for _, s := range []string{"user:[4026531837]", "pid:[4026531836]", "mnt:[0]", "net:[18446744073709551615]",
		"user:[01]", "pipe:[1]", "", ":[]", "user:[1]x", "uts:[4026531838]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := nsrel.ParseName(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "nsrel: ") || strings.Contains(err.Error(), "\n") {
				t.Fatalf("bad error text %q", err)
			}
			return
		}
		if !n.Type.Valid() {
			t.Fatalf("ParseName(%q) gave invalid type %v", s, n.Type)
		}
		// Only canonical text parses, so formatting gives it back.
		if n.String() != s {
			t.Fatalf("ParseName(%q).String() = %q", s, n.String())
		}
	})
}

func TestIDUnsupported(t *testing.T) {
	restore := nsrel.SetIoctlGetID(func(int) (uint64, error) { return 0, unix.ENOTTY })
	defer restore()
	for i := 0; i < 2; i++ { // the second call takes the cached path
		_, err := nsrel.ID(nsrel.Path("/proc/self/ns/user"))
		if !errors.Is(err, errors.ErrUnsupported) {
			t.Fatalf("call %d: ID on an old kernel = %v, want ErrUnsupported", i, err)
		}
		if errors.Is(err, nsrel.ErrNotNamespace) {
			t.Errorf("unsupported also matches ErrNotNamespace: %v", err)
		}
		if _, err := nsrel.ID(nsrel.Path("/dev/null")); !errors.Is(err, nsrel.ErrNotNamespace) || errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("ID(/dev/null) on an old kernel = %v, want ErrNotNamespace only", err)
		}
	}
}

func ExampleParseName() {
	n, err := nsrel.ParseName("user:[4026531837]")
	if err != nil {
		panic(err)
	}
	fmt.Println(n.Type, n.Ino, n.Ino == nsrel.InitialUserNSIno)
	// Output: user 4026531837 true
}

func ExampleTypeOf() {
	t, err := nsrel.TypeOf(nsrel.Path("/proc/self/ns/pid_for_children"))
	if err != nil {
		panic(err)
	}
	fmt.Println(t)
	// Output: pid
}

func ExampleParent() {
	// The initial user namespace has no parent: the kernel says EPERM.
	_, err := nsrel.Parent(nsrel.Path("/proc/self/ns/user"))
	fmt.Println(errors.Is(err, unix.EPERM))
	// Output: true
}

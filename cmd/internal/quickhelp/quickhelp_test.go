package quickhelp

import "testing"

func TestAnswers(t *testing.T) {
	env := map[string]string{"SET": "/run/x.sock", "EMPTY": ""}
	for _, tc := range []struct {
		name string
		args []string
		env  []string
		want bool
	}{
		{"long", []string{"lsuserns", "--help"}, nil, true},
		{"short", []string{"lsuserns", "-h"}, nil, true},
		{"unset or empty variables", []string{"lsuserns", "--help"}, []string{"UNSET", "EMPTY"}, true},
		{"a variable the help shows is set", []string{"lsuserns", "--help"}, []string{"UNSET", "SET"}, false},
		{"no arguments", []string{"lsuserns"}, nil, false},
		{"no program name", nil, nil, false},
		{"with another option", []string{"lsuserns", "--json", "--help"}, nil, false},
		{"help then more", []string{"lsuserns", "--help", "x"}, nil, false},
		{"single dash long", []string{"lsuserns", "-help"}, nil, false},
		{"a value", []string{"lsuserns", "--help=true"}, nil, false},
		{"an argument", []string{"lsuserns", "help"}, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := answers(tc.args, func(k string) string { return env[k] }, tc.env); got != tc.want {
				t.Errorf("answers(%q, %q) = %v, want %v", tc.args, tc.env, got, tc.want)
			}
		})
	}
}

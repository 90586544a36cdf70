// Package quickhelp answers a command's --help while the program is still
// initialising its packages, before those the rest of the command needs
// (the flag parser, the container lookup, syslog's network code): a
// help that costs about what an empty Go program costs to start.
//
// A command gets it from a package of its own that embeds the help text
// (written from the command's flag set and checked against it by the
// command's tests) and calls [Answer] from its init function. Go
// initialises packages one at a time, each time the first in the order
// of import paths whose imports are all initialised (the language
// specification, "Package initialization"); such a package imports only
// this one (which imports os) and embed, so its turn comes as soon as os
// is initialised and no package that sorts before it is ready first: for
// lsuserns, right after os (GODEBUG=inittrace=1). When it does not
// answer, nothing is lost: the command starts as usual and its flag
// parser prints the same text.
package quickhelp

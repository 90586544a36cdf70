// Package bigstack grows the main goroutine's stack once, early in the
// process, for a short-lived program whose work needs a deep stack.
//
// A goroutine starts with an 8 KiB stack and doubles it whenever a call
// would run past it; each doubling copies the stack and walks every frame
// on it through the binary's function tables. A hook stage goes deep
// enough (config parse, inspection, the audit log's append) to double it
// three times with many frames on it each time, and in a process that
// lives 2 to 3 ms those walks fault in cold pages of the function tables:
// about 5 % of a stage's CPU (docs/BENCHMARKS.md). Imported for its side
// effect (import _), its package initialisation, which runs before that of
// most packages (it imports nothing), calls one function with a 32 KiB
// frame: the stack grows once to 64 KiB while only a few frames are on
// it, and stays that size (stacks shrink only at a garbage collection,
// which a hook stage does not reach).
//
// nsrel-hook imports it; long-running programs have no use for it.
package bigstack

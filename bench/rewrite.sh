#!/bin/sh
# Rewrite each FILE in one sequential write (same bytes, mode 755), as
# install(1) or a package manager writes a binary:
#
#   bench/rewrite.sh FILE...
#
# The benchmarks run it on every binary they compare. How the linker
# wrote a file changes how fast it starts while the file is in the page
# cache, by up to 12 % and differently for each file (a binary that
# stops earlier in its work measured slower than the whole stage);
# rewritten, the binaries compare by what they do (docs/BENCHMARKS.md).
set -eu
for f in "$@"; do
	cat "$f" >"$f.rewrite"
	chmod 755 "$f.rewrite"
	mv -f "$f.rewrite" "$f"
done

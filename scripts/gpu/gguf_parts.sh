#!/usr/bin/env bash
# The built-in GGUF (98 MB) is over one device call's 64 MiB carry, so it travels in three git-ignored
# parts, one per call on one warm machine (the machine is given back 30 s after a call):
#   here: cat SmolLM2-135M-Instruct.Q4_1.gguf | { head -c 31000000 > .slmdev/p1/part1;
#         head -c 56000000 > .slmdev/p2/part2; cat > .slmdev/p3/part3; }
# Each call carries one part (.slmdev/p1, then p2, then p3) and runs this first: it keeps the parts in
# /tmp/g and joins them once all three are there. Prints the GGUF's path when it is complete.
set -u
mkdir -p /tmp/g
for n in 1 2 3; do [ -f .slmdev/p$n/part$n ] && cp .slmdev/p$n/part$n /tmp/g/; done
G=/tmp/g/SmolLM2-135M-Instruct.Q4_1.gguf
if [ ! -f $G ] && [ -f /tmp/g/part1 ] && [ -f /tmp/g/part2 ] && [ -f /tmp/g/part3 ]; then
    cat /tmp/g/part1 /tmp/g/part2 /tmp/g/part3 > $G
fi
if [ -f $G ]; then
    sum=$(md5sum < $G | cut -d' ' -f1)
    [ "$sum" = a1231443440b107ff29f02bdb38c9d0a ] || { echo "GGUF checksum mismatch: $sum"; rm -f $G; exit 1; }
    echo "$G"
else
    echo "GGUF parts so far: $(ls /tmp/g)" >&2
fi

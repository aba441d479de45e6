# Prints what a Cilium node's mounts lack, one word a line, and nothing when
# all is well: "bpffs" when /sys/fs/bpf is not a bpf file system, "shared"
# when / or /sys/fs/bpf is a private mount (the chart mounts /sys/fs/bpf
# into the agent with Bidirectional propagation, /run/cilium/cgroupv2 with
# HostToContainer). It only reads $1, /proc/self/mountinfo by default.
# Later lines win: a mount hides what was mounted on the same point before.
awk '
{
	for (i = 7; i <= NF && $i != "-"; i++) ;
	shared = 0
	for (j = 7; j < i; j++) if ($j ~ /^shared:/) shared = 1
	if ($5 == "/") root = shared
	if ($5 == "/sys/fs/bpf") { bpf = ($(i + 1) == "bpf"); bpfshared = shared }
}
END {
	if (!bpf) print "bpffs"
	if (!root || (bpf && !bpfshared)) print "shared"
}' "${1:-/proc/self/mountinfo}"

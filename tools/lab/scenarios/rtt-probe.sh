# rtt-probe (diagnostic, not in `lab test`): where an idle ping's round trip goes.
# LAB_PROBE_CLASS (default ecm): the kernel driver's ping RTT, then usbnetd's, in one boot;
# for usbnetd, the CPU time its threads ran, the time they waited runnable, and how often
# they were scheduled, per ping (from /proc/PID/task/*/schedstat); and what a hand-over
# between two processes costs here against one between two threads of a process, at the
# same spacing (tools/lab/prof/switch-probe.c).
CLASS=${LAB_PROBE_CLASS:-ecm}
N=${LAB_PROBE_PINGS:-30}
TAP=usbnet0
kernel_up $CLASS
wait_for 15 ping1 $NET_GADGET || die "no ping over the kernel driver"
prof_start
ping_stats $NET_GADGET $N; k_h2d=$PING_AVG
prof_stop rtt-kernel-h2d
ping_stats ns $NET_HOST $N; k_d2h=$PING_AVG
log "kernel driver: h2d $k_h2d ms, d2h $k_d2h ms"
sw=$(/mnt/bin/switch-probe $N 200) || die "switch-probe failed"
log "$sw (median round trip, two hand-overs each)"
start_usbnetd run --device $GADGET_PORT --ifname $TAP $LAB_PROBE_ARGS
wait_usbnetd_if $TAP 10
$IP link set $TAP up
$IP addr replace $NET_HOST/24 dev $TAP
wait_for 15 ping1 $NET_GADGET || die "no ping through $TAP"
wait_for 5 ping1_ns $NET_HOST || die "no ping from the gadget through $TAP"
sched_sum() { cat /proc/$UPID/task/*/schedstat | awk '{r+=$1; w+=$2; n+=$3} END{print r, w, n}'; }
sched_threads() { for t in /proc/$UPID/task/*; do echo "$(cat $t/comm):$(cat $t/schedstat | tr ' ' ',')"; done | tr '\n' ' '; }
probe() { # DIR: ping N times, print per-ping usbnetd run/wait/slices
	set -- $(sched_sum)
	_r0=$1 _w0=$2 _n0=$3
	prof_start
	if [ "$DIR" = h2d ]; then ping_stats $NET_GADGET $N >&2; else ping_stats ns $NET_HOST $N >&2; fi
	prof_stop rtt-usbnetd-$DIR
	set -- $(sched_sum)
	awk -v r=$(($1 - _r0)) -v w=$(($2 - _w0)) -v n=$(($3 - _n0)) -v p=$N -v d=$DIR -v a=$PING_AVG \
		'BEGIN{printf "%s rtt %s ms; usbnetd per ping: ran %.0f us, waited %.0f us, scheduled %.1f times\n", d, a, r/p/1000, w/p/1000, n/p}'
}
log "threads before: $(sched_threads)"
DIR=h2d; o1=$(probe); log "usbnetd $o1"
log "threads after h2d: $(sched_threads)"
DIR=d2h; o2=$(probe); log "usbnetd $o2"
stop_usbnetd
result "class=$CLASS kernel_h2d_ms=$k_h2d kernel_d2h_ms=$k_d2h usbnetd: $o1 | $o2 | ${sw#switch-probe }"
finish

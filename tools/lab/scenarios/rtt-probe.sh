# rtt-probe (diagnostic, not in `lab test`): where an idle ping's round trip goes.
# LAB_PROBE_CLASS (default ecm): the kernel driver's ping RTT, then usbnetd's, in one boot;
# for usbnetd, the CPU time its threads ran, the time they waited runnable, and how often
# they were scheduled, per ping (from /proc/PID/task/*/schedstat); and what a hand-over
# between two processes costs here against one between two threads of a process, at the
# same spacing, and what a system call costs (tools/lab/prof/switch-probe.c).
CLASS=${LAB_PROBE_CLASS:-ecm}
N=${LAB_PROBE_PINGS:-30}
TAP=usbnet0
# LAB_PROBE_TRACE=1: also record an ftrace timeline of 5 pings each way and driver
# (scheduler switches and wake-ups, the netdev and usbfs/tun/usbnet entry points),
# to results/NN-rtt-probe.trace-PHASE.txt; tools/lab/prof/trace-report reads them.
T=/sys/kernel/debug/tracing
trace_pings() { # PHASE: h2d or d2h pings, traced
	[ "${LAB_PROBE_TRACE:-0}" = 1 ] || return 0
	echo 0 > $T/tracing_on
	echo > $T/trace
	echo 4096 > $T/buffer_size_kb
	echo > $T/set_ftrace_filter
	for f in proc_do_submiturb proc_reapurbnonblock async_completed usbdev_poll \
		tun_get_user tun_net_xmit tun_chr_read_iter tun_chr_write_iter \
		usbnet_start_xmit usbnet_bh rx_complete tx_complete \
		usb_hcd_giveback_urb usb_gadget_giveback_request dummy_timer \
		icmp_rcv ping_rcv __x64_sys_poll __x64_sys_ppoll __x64_sys_ioctl; do
		echo $f >> $T/set_ftrace_filter 2>/dev/null
	done
	echo function > $T/current_tracer
	for e in sched/sched_switch sched/sched_wakeup net/net_dev_queue net/netif_rx net/netif_receive_skb; do
		echo 1 > $T/events/$e/enable
	done
	echo 1 > $T/tracing_on
	case $1 in
	*h2d) ping -c 5 -i 0.3 -q $NET_GADGET >/dev/null ;;
	*) in_ns ping -c 5 -i 0.3 -q $NET_HOST >/dev/null ;;
	esac
	echo 0 > $T/tracing_on
	cat $T/trace > $LAB_RES.trace-$1.txt
	echo nop > $T/current_tracer
	echo 0 > $T/events/enable
	log "trace $1: $(wc -l < $LAB_RES.trace-$1.txt) lines"
}
# LAB_PROBE_LOAD=1: also trace 0.5 s in the middle of a 3 s iperf3 each way and driver
# (scheduler switches, every syscall's entry, every frame queued to a netdev), to
# results/NN-rtt-probe.load-PHASE.txt: switches and syscalls by task (trace-report).
load_trace() { # PHASE [iperf3 args]
	[ "${LAB_PROBE_LOAD:-0}" = 1 ] || return 0
	_ph=$1
	shift
	$IPERF3 -c $NET_GADGET -t 3 -f m "$@" > /tmp/load-$_ph.txt 2>&1 &
	_ip=$!
	sleep 1.2
	echo 0 > $T/tracing_on
	echo > $T/trace
	echo 16384 > $T/buffer_size_kb
	for e in sched/sched_switch sched/sched_wakeup raw_syscalls/sys_enter net/net_dev_queue irq/softirq_entry irq/softirq_exit; do
		echo 1 > $T/events/$e/enable
	done
	echo 1 > $T/tracing_on
	sleep 0.5
	echo 0 > $T/tracing_on
	echo 0 > $T/events/enable
	cat $T/trace > $LAB_RES.load-$_ph.txt
	wait $_ip
	log "load $_ph: $(grep -h receiver /tmp/load-$_ph.txt | tail -1)"
}
log "guest cpu: $(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2); meltdown: $(cat /sys/devices/system/cpu/vulnerabilities/meltdown 2>/dev/null); spectre_v2: $(cat /sys/devices/system/cpu/vulnerabilities/spectre_v2 2>/dev/null)"
kernel_up $CLASS
wait_for 15 ping1 $NET_GADGET || die "no ping over the kernel driver"
prof_start
ping_stats $NET_GADGET $N; k_h2d=$PING_AVG
prof_stop rtt-kernel-h2d
ping_stats ns $NET_HOST $N; k_d2h=$PING_AVG
trace_pings kernel-h2d; trace_pings kernel-d2h
[ "${LAB_PROBE_LOAD:-0}" = 1 ] && iperf_server
load_trace kernel-h2d; load_trace kernel-d2h -R
log "kernel driver: h2d $k_h2d ms, d2h $k_d2h ms"
sw=$(/mnt/bin/switch-probe $N 200 $DEVNODE) || die "switch-probe failed"
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
trace_pings usbnetd-h2d; trace_pings usbnetd-d2h
load_trace usbnetd-h2d; load_trace usbnetd-d2h -R
stop_usbnetd
result "class=$CLASS kernel_h2d_ms=$k_h2d kernel_d2h_ms=$k_d2h usbnetd: $o1 | $o2 | ${sw#switch-probe }"
finish

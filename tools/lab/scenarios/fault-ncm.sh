# fault-ncm: faults under load, usbnetd on the NCM gadget with iperf3 running both ways.
#  1. Unplug (UDC unbind) during iperf3, LAB_UNPLUG_ROUNDS times (10; `lab faults` runs 100):
#     every exit is status 3 within 1 s, the TAP is gone, and on replug the kernel driver binds.
#  2. SIGTERM under load: exit 0 within 2 s, TAP gone, cdc_ncm bound again.
#  3. SIGKILL under load, then a new instance: it takes over the device the killed one left
#     detached, carries a ping, and after its clean exit cdc_ncm is bound again.
#  4. usbfs memory capped at 1 MiB (usbfs_memory_mb): the default ring fits and carries
#     traffic; a ring asked to be 2 MiB (--rx-queue 128) fails with a clear error or runs
#     smaller, never a crash (usbnetd shrinks it to half the cap and logs one warning).
CLASS=ncm
TAP=usbnet0
ROUNDS=${LAB_UNPLUG_ROUNDS:-10}
MEMCAP=/sys/module/usbcore/parameters/usbfs_memory_mb
kernel_driver_prepare $CLASS
gadget_create $CLASS
gadget_plug
wait_kernel_netdev
net_gadget_ns

up_usbnetd() {
	start_usbnetd run --device $GADGET_PORT --ifname $TAP "$@"
	wait_usbnetd_if $TAP 15
	$IP addr replace $NET_HOST/24 dev $TAP
	# the gadget may hold an NTB stranded by the last unplug (lib.sh: ncm_gadget_flush)
	ncm_gadget_flush $(cat /sys/class/net/$TAP/address)
	wait_for 15 ping1 $NET_GADGET
}
# a fresh iperf3 server: the last one may still hold the session of a client killed with
# its device ("the server is busy running a test"); wait for it to be gone first
iperf_fresh() {
	_p=$(cat /tmp/iperf3-server.pid 2>/dev/null)
	[ -n "$_p" ] && kill $_p 2>/dev/null && wait_for 3 sh -c "! test -d /proc/$_p"
	rm -f /tmp/iperf3-server.pid
	iperf_server
}
load_start() {
	iperf_fresh
	$IPERF3 -c $NET_GADGET -t 60 --bidir --connect-timeout 3000 > /tmp/iperf-load.txt 2>&1 &
	LOAD=$!
	sleep 1.5
}
load_stop() {
	kill $LOAD 2>/dev/null
	wait $LOAD 2>/dev/null
}
gone_in() { wait_for $1 sh -c "! test -d /proc/$UPID || grep -q '^State:.*Z' /proc/$UPID/status"; }
secs_since() { awk -v a=$1 -v b=$(now_s) 'BEGIN{printf "%.2f", b-a}'; }

# ---------------------------------------------------------------- 1. unplug ----
log "==== unplug during iperf3, $ROUNDS rounds ===="
worst=0 bad=0
i=0
while [ $i -lt $ROUNDS ]; do
	i=$((i + 1))
	up_usbnetd || { fail "round $i: no ping through $TAP before the unplug"; bad=$((bad + 1)); }
	load_start
	t0=$(now_s)
	echo "" > $GDIR/UDC
	if gone_in 3; then
		wait $UPID
		rc=$?
		dt=$(secs_since $t0)
	else
		rc=running dt=3+
		kill -KILL $UPID 2>/dev/null
		wait $UPID
	fi
	load_stop
	tapgone=yes
	wait_for 1 sh -c "! test -e /sys/class/net/$TAP" || tapgone=no
	gadget_plug > /dev/null
	kback=yes
	wait_for 10 iface_bound_to cdc_ncm || kback=no
	log "round $i: exit $rc after ${dt}s, TAP gone: $tapgone, cdc_ncm back: $kback"
	if [ "$rc" != 3 ] || ! awk -v d=$dt 'BEGIN{exit !(d <= 1.0)}' || [ $tapgone != yes ] || [ $kback != yes ]; then
		fail "unplug round $i: exit $rc after ${dt}s, TAP gone $tapgone, cdc_ncm back $kback"
		bad=$((bad + 1))
		tail -3 $LAB_RES.usbnetd.log
	fi
	awk -v d=$dt -v w=$worst 'BEGIN{exit !(d+0 > w+0)}' && worst=$dt
done
log "unplug: $ROUNDS rounds, $bad bad, slowest exit ${worst}s"
wait_kernel_netdev

# ---------------------------------------------------------------- 2. SIGTERM ----
log "==== SIGTERM under load ===="
up_usbnetd || fail "SIGTERM: no ping through $TAP"
load_start
t0=$(now_s)
kill -TERM $UPID
if gone_in 2; then
	wait $UPID
	rc=$?
	check "SIGTERM under load: exit 0 (got $rc) in $(secs_since $t0)s" [ $rc = 0 ]
else
	fail "SIGTERM under load: still running after 2 s"
	kill -KILL $UPID
	wait $UPID
fi
load_stop
check "SIGTERM: $TAP gone" wait_for 1 sh -c "! test -e /sys/class/net/$TAP"
check "SIGTERM: cdc_ncm bound again" wait_for 5 iface_bound_to cdc_ncm
wait_kernel_netdev

# ---------------------------------------------------------------- 3. SIGKILL ----
log "==== SIGKILL under load, then a new instance ===="
up_usbnetd || fail "SIGKILL: no ping through $TAP"
load_start
kill -KILL $UPID
wait $UPID
load_stop
check "SIGKILL: $TAP gone with the process" wait_for 2 sh -c "! test -e /sys/class/net/$TAP"
log "after SIGKILL: interface 0 driver '$(iface_driver 0)', interface 1 driver '$(iface_driver 1)'"
not_kernel() { ! iface_bound_to cdc_ncm; }
check "SIGKILL: the device is left detached (cdc_ncm not bound)" not_kernel
if up_usbnetd; then
	ok "a new instance drives the device left detached (ping through $TAP)"
else
	fail "a new instance after SIGKILL: no ping through $TAP"
fi
stop_usbnetd
check "after the new instance's clean exit cdc_ncm is bound again" wait_for 5 iface_bound_to cdc_ncm
wait_kernel_netdev

# ---------------------------------------------------------------- 4. usbfs memory ----
log "==== usbfs memory capped at 1 MiB ===="
old=$(cat $MEMCAP)
echo 1 > $MEMCAP
if up_usbnetd; then
	ring=$(grep -o 'rx queue [^;]*x [0-9]* B, tx queue [0-9]* x [0-9]* B' $LAB_RES.usbnetd.log | head -1)
	log "usbfs cap 1 MiB, default ring: $ring"
	iperf_fresh
	iperf_run memcap-h2d
	iperf_run memcap-d2h -R
	kill $(cat /tmp/iperf3-server.pid 2>/dev/null) 2>/dev/null
	check "usbfs cap 1 MiB: usbnetd alive after traffic" is_alive $UPID
	stop_usbnetd
	MEM1="default ring ($ring) carries traffic"
else
	fail "usbfs cap 1 MiB: default ring: no ping"
	MEM1="default ring: no traffic"
fi
wait_for 5 iface_bound_to cdc_ncm
log "usbfs cap 1 MiB, a 2 MiB ring asked for (--rx-queue 128)"
start_usbnetd run --device $GADGET_PORT --ifname $TAP --rx-queue 128
wait_for 15 sh -c "test -e /sys/class/net/$TAP || ! test -d /proc/$UPID || grep -q '^State:.*Z' /proc/$UPID/status"
if is_alive $UPID; then
	$IP link set $TAP up
	$IP addr replace $NET_HOST/24 dev $TAP
	# as up_usbnetd: the last hand-over may have stranded an NTB in f_ncm (lib.sh:
	# ncm_gadget_flush); CI saw this case carry nothing once without it
	ncm_gadget_flush $(cat /sys/class/net/$TAP/address)
	if wait_for 15 ping1 $NET_GADGET; then
		MEM2="runs and carries a ping: $(grep -o 'rx queue [0-9]* x [0-9]* B, tx queue [0-9]* x [0-9]* B' $LAB_RES.usbnetd.log | head -1)"
	else
		MEM2="runs, NO traffic"
		# what the ring saw meanwhile (transfer errors: ENOMEM from usbfs?)
		log "  usbnetd stats: $(LD_LIBRARY_PATH=/mnt/bin/lib timeout 5 $USBNETD stats $TAP --json 2>&1 | tr -d ' \n' | cut -c1-700)"
		fail "usbfs cap 1 MiB, --rx-queue 128: running but no ping"
	fi
	_w=$(grep -i 'warn\|error' $LAB_RES.usbnetd.log | sed 's/^\[[^]]*\] //' | head -1)
	[ -n "$_w" ] && { log "  usbnetd: $_w"; MEM2="$MEM2; $_w"; }
	if is_alive $UPID; then stop_usbnetd; else wait $UPID; MEM2="$MEM2; then exited $?"; fi
else
	wait $UPID
	rc=$?
	n=$(grep -c '^usbnetd: ' $LAB_RES.usbnetd.log)
	MEM2="refused (exit $rc): $(grep '^usbnetd: ' $LAB_RES.usbnetd.log | tail -1 | cut -c10-120)"
	[ $rc != 0 ] && [ $rc -lt 100 ] && [ "$n" -le 1 ] || fail "usbfs cap, --rx-queue 128: exit $rc, $n error lines"
	tail -5 $LAB_RES.usbnetd.log
fi
echo $old > $MEMCAP
log "usbfs cap 1 MiB: $MEM1; --rx-queue 128: $MEM2"
check "kernel driver back after the usbfs cases" wait_for 5 iface_bound_to cdc_ncm
result "unplug_rounds=$ROUNDS unplug_bad=$bad unplug_worst_exit_s=$worst"
finish

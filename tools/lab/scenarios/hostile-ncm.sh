# hostile-ncm: a lying CDC-NCM device (tools/lab/hostile, on gadgetfs) against usbnetd and
# the kernel's cdc_ncm in the same boot.
#  1. Data cases: valid NTB, malformed transfer, valid NTB, for every case of the catalogue;
#     then notification cases and a bulk IN stall. usbnetd must keep running, deliver each
#     valid frame exactly once, never more datagrams than the transfer carries, and count
#     every drop (rx_drop_bad_transfer / rx_drop_bad_frame); a stall is cleared and counted;
#     after each notification case the link is up again.
#  2. Bring-up cases, one plug each: hostile GET_NTB_PARAMETERS replies and lying
#     descriptors. usbnetd either refuses (non-zero exit, one line naming the problem) or
#     comes up with TX that works (the device counts well-formed NTBs it received).
# The table (case -> usbnetd -> cdc_ncm) is printed at the end and kept in the README.
H=/mnt/bin/hostile
KDRV=cdc_ncm
. "$(dirname "$0")/hostile-common.sh"

# run_data IF WHO: every data case, notification case and the stall against interface IF
run_data() {
	_if=$1 _who=$2
	for c in $($HOSTILE --list | awk '$1=="case"{print $2}'); do
		p0=$(rxp $_if) b0=$(rxb $_if)
		[ $_who = usbnetd ] && { d0=$(($(ustat rx_drop_bad_transfer) + $(ustat rx_drop_bad_frame))); f0=$(ustat rx_frames); }
		hcmd case $c || { fail "$_who: hostile case $c did not finish"; cell data $c $_who "device stuck"; continue; }
		mn=$(kv expect_min "$HDONE") mx=$(kv expect_max "$HDONE") nb=$(kv bytes "$HDONE")
		if [ $_who = usbnetd ]; then sleep 1.2; else sleep 0.4; fi
		got=$(($(rxp $_if) - p0)) bytes=$(($(rxb $_if) - b0))
		verdict=ok
		[ $got -gt $mx ] && verdict="delivered a bad datagram"
		# the two valid frames are at most 2 x 856 bytes
		[ $bytes -gt $((nb + 1712)) ] && verdict="AMPLIFIED: $bytes bytes from a $nb-byte NTB"
		[ $got -lt 2 ] && verdict="LOST a valid frame"
		out="$got frames (of $mn..$mx)"
		if [ $_who = usbnetd ]; then
			drops=$(($(ustat rx_drop_bad_transfer) + $(ustat rx_drop_bad_frame) - d0))
			frames=$(($(ustat rx_frames) - f0))
			out="$out, $drops drop(s) counted"
			is_alive $UPID || verdict="usbnetd DIED"
			[ $frames = $got ] || verdict="$verdict; usbnetd counted $frames frames, TAP $got"
			# every datagram not delivered is counted; a case with nothing deliverable
			# (max 2: just the valid frames around it) always drops something
			{ [ $got -lt $mx ] || [ $mx = 2 ]; } && [ $drops = 0 ] && verdict="$verdict; drop NOT counted"
			[ $got -lt $mn ] && verdict="$verdict; below $mn"
			[ "$verdict" = ok ] || fail "usbnetd, case $c: $verdict ($out)"
		else
			[ $got -lt $mx ] && out="$out, drops not counted by cdc_ncm"
		fi
		[ "$(kv io "$HDONE")" = ok ] || verdict="$verdict; device I/O error"
		log "$_who case $c: $out: $verdict"
		cell data $c $_who "$out${verdict:+: }$verdict"
	done
	for c in $($HOSTILE --list | awk '$1=="notify"{print $2}'); do
		p0=$(rxp $_if)
		hcmd notify $c || { fail "$_who: notify $c did not finish"; cell notify $c $_who "device stuck"; continue; }
		wait_for 3 carrier $_if && up=up || up=DOWN
		sleep 0.3
		got=$(($(rxp $_if) - p0))
		out="link $up after, $(kv transfers "$HDONE") transfers, frame after: $got"
		verdict=ok
		[ $up = up ] || verdict="link left down"
		[ $got = 1 ] || verdict="$verdict; frame after the case: $got (want 1)"
		if [ $_who = usbnetd ]; then
			is_alive $UPID || verdict="usbnetd DIED"
			[ "$verdict" = ok ] || fail "usbnetd, notify $c: $verdict ($out)"
		fi
		log "$_who notify $c: $out: $verdict"
		cell notify $c $_who "$out: $verdict"
	done
	run_stall $_if $_who
	run_int_stall $_if $_who
	run_out_pause $_if $_who
}

# run_out_pause IF WHO: the device reads nothing on bulk OUT for 8 s while the host
# sends 3 s of pings (to a fixed neighbour: the device answers no ARP), more than the
# OUT queue holds. The host must unlink what waits after 5 s with its queue full, as the
# kernel's netdev watchdog has usbnet's tx_timeout do (the queue's tx_timeout count in
# sysfs; usbnetd's tx_timeouts), and once the device reads again it must take
# well-formed NTBs from the host.
run_out_pause() {
	$IP addr replace $NET_HOST/24 dev $1
	$IP neigh replace $NET_GADGET lladdr 02:00:00:00:00:99 dev $1
	if [ $2 = usbnetd ]; then t0=$(ustat tx_timeouts); else t0=$(cat /sys/class/net/$1/queues/tx-0/tx_timeout); fi
	ping -c 300 -i 0.01 -W 1 $NET_GADGET > /dev/null 2>&1 &
	_pp=$!
	hcmd pause-out 8 || fail "$2: hostile pause-out did not finish"
	wait $_pp
	if [ $2 = usbnetd ]; then t=$(($(ustat tx_timeouts) - t0)); else t=$(($(cat /sys/class/net/$1/queues/tx-0/tx_timeout) - t0)); fi
	g0=$(hstat out_good)
	ping -c 3 -i 0.2 -W 1 $NET_GADGET > /dev/null 2>&1
	sleep 0.5
	g=$(($(hstat out_good) - g0))
	$IP neigh del $NET_GADGET dev $1 2>/dev/null
	$IP addr flush dev $1
	out="$t TX timeout(s), then $g NTBs taken"
	verdict=ok
	[ $t -ge 1 ] || verdict="OUT transfers never unlinked"
	[ $g -ge 1 ] || verdict="$verdict; TX did not resume"
	if [ $2 = usbnetd ]; then
		is_alive $UPID || verdict="usbnetd DIED"
		[ "$verdict" = ok ] || fail "usbnetd, bulk OUT not read for 8 s: $verdict ($out)"
	fi
	log "$2 out-pause: $out: $verdict"
	cell fault out-pause $2 "$out: $verdict"
}

# kernel_bringup KIND CASE: how cdc_ncm takes the device now plugged (netdev? TX?)
kernel_bringup() {
	if ! wait_for 5 has_host_if; then
		cell $1 $2 cdc_ncm "no netdev ($(dmesg | grep -i 'cdc_ncm' | tail -1 | sed 's/^\[[^]]*\] //' | cut -c1-70))"
		return
	fi
	_k=$(host_ifname)
	$IP link set $_k up
	$IP addr replace $NET_HOST/24 dev $_k
	g0=$(hstat out_good) x0=$(hstat out_bad)
	ping -c 3 -W 1 $NET_GADGET > /dev/null 2>&1
	sleep 0.5
	g=$(($(hstat out_good) - g0)) x=$(($(hstat out_bad) - x0))
	if [ $g -gt 0 ]; then out="bound, TX works ($g NTBs)"; else out="bound, TX DEAD (0 NTBs, $x bad)"; fi
	cell $1 $2 cdc_ncm "$out"
	$IP addr flush dev $_k
	# down: a TX-dead cdc_ncm keeps its timer busy, starving the guest for the usbnetd half
	$IP link set $_k down
}

# usbnetd_bringup KIND CASE: usbnetd on the device now plugged: refuses clearly, or TX works
usbnetd_bringup() {
	LD_LIBRARY_PATH=/mnt/bin/lib $GNUENV --default-signal=INT,QUIT,TERM \
		$USBNETD run --device $GADGET_PORT --ifname $TAP > $LAB_RES.usbnetd.log 2>&1 < /dev/null &
	UPID=$!
	# generous: a starved TCG guest (a busy host, cdc_ncm's TX timer spinning on a 184-byte
	# tx_max) has taken 15 s to unbind the kernel driver
	if ! wait_for 60 sh -c "test -e /sys/class/net/$TAP || ! test -d /proc/$UPID || grep -q '^State:.*Z' /proc/$UPID/status"; then
		fail "usbnetd, $1 $2: neither $TAP nor an exit within 60 s"
		kill -KILL $UPID 2>/dev/null
		wait $UPID 2>/dev/null
		cp $LAB_RES.usbnetd.log $LAB_RES.usbnetd.$1-$2.log
		cell $1 $2 usbnetd "STUCK: no $TAP, no exit"
		return
	fi
	if ! is_alive $UPID; then
		wait $UPID
		_rc=$?
		cp $LAB_RES.usbnetd.log $LAB_RES.usbnetd.$1-$2.log
		_lines=$(grep -c '^usbnetd: ' $LAB_RES.usbnetd.log)
		_msg=$(grep '^usbnetd: ' $LAB_RES.usbnetd.log | tail -1 | cut -c10-240)
		out="refused (exit $_rc): $_msg"
		if [ $_rc = 0 ] || [ $_rc -ge 100 ] || [ "$_lines" != 1 ]; then
			fail "usbnetd, $1 $2: exit $_rc with $_lines error line(s): not a clear refusal"
			sed 's/^/  usbnetd: /' $LAB_RES.usbnetd.log | tail -5
			out="$out: NOT CLEAN"
		fi
		cell $1 $2 usbnetd "$out"
		return
	fi
	$IP link set $TAP up
	$IP addr replace $NET_HOST/24 dev $TAP
	wait_for 5 carrier $TAP || log "$TAP: no carrier"
	g0=$(hstat out_good) x0=$(hstat out_bad) o0=$(hstat out_oversize)
	ping -c 3 -W 1 $NET_GADGET > /dev/null 2>&1
	sleep 0.5
	g=$(($(hstat out_good) - g0)) x=$(($(hstat out_bad) - x0)) o=$(($(hstat out_oversize) - o0))
	_info=$(grep -o 'OUT [0-9]* B ([^)]*)' $LAB_RES.usbnetd.log | head -1)
	if [ $g -gt 0 ] && [ $x = 0 ] && [ $o = 0 ]; then
		out="up, TX works ($g NTBs; $_info)"
	else
		out="up, TX BROKEN ($g good, $x bad, $o oversize NTBs)"
		fail "usbnetd, $1 $2: $out"
	fi
	_warn=$(grep -i 'warn' $LAB_RES.usbnetd.log | sed 's/^\[[^]]*\] //' | tr '\n' ';' | sed 's/;$//' | cut -c1-160)
	[ -n "$_warn" ] && { log "  usbnetd: $_warn"; out="$out; $_warn"; }
	kill -INT $UPID
	wait_for 3 sh -c "! test -d /proc/$UPID || grep -q '^State:.*Z' /proc/$UPID/status" || fail "usbnetd, $1 $2: still running 3 s after SIGINT"
	wait $UPID
	_rc=$?
	cp $LAB_RES.usbnetd.log $LAB_RES.usbnetd.$1-$2.log
	[ $_rc = 0 ] || { fail "usbnetd, $1 $2: exit $_rc after SIGINT"; out="$out; exit $_rc after SIGINT"; }
	cell $1 $2 usbnetd "$out"
}

# ------------------------------------------------------------------ 1. data ----
log "==== data, notification and stall cases ===="
hostile_start
if wait_kernel_netdev; then
	KIF=$HOSTIF
	$IP link set $KIF up
	wait_for 3 carrier $KIF || { hcmd connect; wait_for 3 carrier $KIF; } || log "$KIF: no carrier from cdc_ncm"
	check "kernel driver on the hostile device is cdc_ncm" iface_bound_to cdc_ncm
	run_data $KIF cdc_ncm
fi
start_usbnetd run --device $GADGET_PORT --ifname $TAP
wait_usbnetd_if $TAP 10
run_data $TAP usbnetd
LD_LIBRARY_PATH=/mnt/bin/lib timeout 5 $USBNETD stats $TAP --json > $LAB_RES.stats.json 2>&1
log "usbnetd stats after the data cases: $(tr -d ' \n' < $LAB_RES.stats.json | cut -c1-600)"
stop_usbnetd
check "kernel driver back on the hostile device after usbnetd" wait_for 5 iface_bound_to cdc_ncm
hostile_stop

# ------------------------------------------------------------------ 2. bring-up ----
log "==== bring-up cases ===="
for p in $($HOSTILE --list | awk '$1=="params" && $2!="normal"{print $2}'); do
	log "-- params $p"
	hostile_start --params $p
	kernel_bringup params $p
	usbnetd_bringup params $p
	hostile_stop
done
for d in $($HOSTILE --list | awk '$1=="desc" && $2!="normal"{print $2}'); do
	log "-- desc $d"
	hostile_start --desc $d
	kernel_bringup desc $d
	usbnetd_bringup desc $d
	hostile_stop
done

finish_table

# hostile-rndis: the hostile device as an RNDIS function (tools/lab/hostile --class rndis,
# on gadgetfs) against the kernel's rndis_host, then usbnetd, in the same boot.
#  1. Data cases: valid PACKET_MSG transfer, malformed transfer, valid transfer, for every
#     case of the catalogue; then status cases on the control channel (malformed
#     INDICATE_STATUS, RESPONSE_AVAILABLE with nothing behind, a KEEPALIVE flood) and a bulk
#     IN halt. usbnetd must keep running, deliver each valid frame exactly once, never more
#     frames or bytes than the transfer carries, and count every drop
#     (rx_drop_bad_transfer / rx_drop_bad_frame); after each status case the link is up and
#     a frame passes.
#  2. Bring-up cases, one plug each: lying INITIALIZE_CMPLT / QUERY_CMPLT replies, chatter
#     before every reply, no reply. usbnetd either refuses (non-zero exit, one line naming
#     the problem, the kernel driver back) or comes up with TX and RX that work (the device
#     counts well-formed PACKET_MSGs from a ping; two frames from the device reach the TAP).
# The table (case -> usbnetd -> rndis_host) is printed at the end and kept in the README.
H="/mnt/bin/hostile --class rndis"
KDRV=rndis_host
. "$(dirname "$0")/hostile-common.sh"

# usnap: one `usbnetd stats` call (slow under TCG) -> U_DROPS (bad transfers + bad frames), U_FRAMES
usnap() {
	_j=$(LD_LIBRARY_PATH=/mnt/bin/lib timeout 5 $USBNETD stats $TAP --json 2>/dev/null | tr -d ' ",')
	U_DROPS=$(echo "$_j" | awk -F: '$1=="rx_drop_bad_transfer"||$1=="rx_drop_bad_frame"{v+=$2} END{print v+0}')
	U_FRAMES=$(echo "$_j" | awk -F: '$1=="rx_frames"{v=$2} END{print v+0}')
}

# run_data IF WHO: every data case, status case and the stall against interface IF
run_data() {
	_if=$1 _who=$2
	# the counters after one case are the baseline of the next (one slow stats call less)
	[ $_who = usbnetd ] && { sleep 1.2; usnap; }
	for c in $($H --list | awk '$1=="case"{print $2}'); do
		p0=$(rxp $_if) b0=$(rxb $_if)
		[ $_who = usbnetd ] && { d0=$U_DROPS f0=$U_FRAMES; }
		hcmd case $c || { fail "$_who: hostile case $c did not finish"; cell data $c $_who "device stuck"; continue; }
		mn=$(kv expect_min "$HDONE") mx=$(kv expect_max "$HDONE") nb=$(kv bytes "$HDONE")
		if [ $_who = usbnetd ]; then sleep 1.2; else sleep 0.4; fi
		got=$(($(rxp $_if) - p0)) bytes=$(($(rxb $_if) - b0))
		verdict=ok
		[ $got -gt $mx ] && verdict="delivered a bad frame"
		# the two valid frames are at most 2 x 856 bytes
		[ $bytes -gt $((nb + 1712)) ] && verdict="AMPLIFIED: $bytes bytes from a $nb-byte transfer"
		[ $got -lt 2 ] && verdict="LOST a valid frame"
		out="$got frames (of $mn..$mx)"
		if [ $_who = usbnetd ]; then
			usnap
			drops=$((U_DROPS - d0))
			frames=$((U_FRAMES - f0))
			out="$out, $drops drop(s) counted"
			is_alive $UPID || verdict="usbnetd DIED"
			[ $frames = $got ] || verdict="$verdict; usbnetd counted $frames frames, TAP $got"
			{ [ $got -lt $mx ] || [ $mx = 2 ]; } && [ $drops = 0 ] && verdict="$verdict; drop NOT counted"
			[ $got -lt $mn ] && verdict="$verdict; below $mn"
			[ "$verdict" = ok ] || fail "usbnetd, case $c: $verdict ($out)"
		else
			[ $got -lt $mx ] && out="$out, drops not counted by rndis_host"
		fi
		[ "$(kv io "$HDONE")" = ok ] || verdict="$verdict; device I/O error"
		log "$_who case $c: $out: $verdict"
		cell data $c $_who "$out${verdict:+: }$verdict"
	done
	for c in $($H --list | awk '$1=="notify"{print $2}'); do
		p0=$(rxp $_if)
		hcmd notify $c || { fail "$_who: notify $c did not finish"; cell status $c $_who "device stuck"; continue; }
		wait_for 3 carrier $_if && up=up || up=DOWN
		sleep 0.3
		got=$(($(rxp $_if) - p0))
		out="link $up after, $(kv transfers "$HDONE") sent, $(kv keepalives_answered "$HDONE") KEEPALIVE(s) answered, frame after: $got"
		verdict=ok
		[ $up = up ] || verdict="link left down"
		[ $got = 1 ] || verdict="$verdict; frame after the case: $got (want 1)"
		if [ $_who = usbnetd ]; then
			is_alive $UPID || verdict="usbnetd DIED"
			[ $c = keepalive-flood ] && [ "$(kv keepalives_answered "$HDONE")" != 200 ] &&
				verdict="$verdict; KEEPALIVEs not all answered"
			[ "$verdict" = ok ] || fail "usbnetd, status $c: $verdict ($out)"
		fi
		log "$_who status $c: $out: $verdict"
		cell status $c $_who "$out: $verdict"
	done
	run_stall $_if $_who
}

# txrx IF: one ping (its ARP broadcasts must reach the device as well-formed PACKET_MSGs),
# then two frames from the device; sets TX_GOOD TX_BAD TX_OVER RX_GOT
txrx() {
	_g0=$(hstat out_good) _x0=$(hstat out_bad) _o0=$(hstat out_oversize) _p0=$(rxp $1)
	# nothing answers: the ARP request is what goes out; no need to wait out -W
	ping -c 1 -W 1 $NET_GADGET > /dev/null 2>&1 &
	_ping=$!
	hcmd valid 2
	sleep 0.4
	kill $_ping 2>/dev/null
	wait $_ping 2>/dev/null
	sleep 0.3
	TX_GOOD=$(($(hstat out_good) - _g0)) TX_BAD=$(($(hstat out_bad) - _x0))
	TX_OVER=$(($(hstat out_oversize) - _o0)) RX_GOT=$(($(rxp $1) - _p0))
}

# kernel_bringup CASE: how rndis_host takes the device now plugged
kernel_bringup() {
	KBOUND=0
	# a netdev, or rndis_host's probe failure (counted from before this plug)
	if ! wait_for 4 sh -c "[ -n \"\$(ls -d $USBDEV/$GADGET_PORT:*/net/* 2>/dev/null)\" ] || [ \$(dmesg | grep -c 'rndis_host: probe of') -gt $PROBES0 ]" ||
		! has_host_if; then
		cell reply $1 rndis_host "no netdev ($(dmesg | grep -i 'rndis' | tail -1 | sed 's/^\[[^]]*\] //' | cut -c1-80))"
		return
	fi
	_k=$(host_ifname)
	KBOUND=1
	$IP link set $_k up
	$IP addr replace $NET_HOST/24 dev $_k
	txrx $_k
	if [ $TX_GOOD -gt 0 ] && [ $RX_GOT -ge 2 ]; then out="bound, TX+RX work"
	else out="bound, TX $TX_GOOD good / $TX_BAD bad, RX $RX_GOT of 2"; fi
	out="$out (MTU $(cat /sys/class/net/$_k/mtu), MAC $(cat /sys/class/net/$_k/address))"
	cell reply $1 rndis_host "$out"
	$IP addr flush dev $_k
	$IP link set $_k down
}

# usbnetd_bringup CASE: usbnetd on the device now plugged: refuses clearly, or TX+RX work
usbnetd_bringup() {
	LD_LIBRARY_PATH=/mnt/bin/lib $GNUENV --default-signal=INT,QUIT,TERM \
		$USBNETD run --device $GADGET_PORT --ifname $TAP > $LAB_RES.usbnetd.log 2>&1 < /dev/null &
	UPID=$!
	if ! wait_for 30 sh -c "test -e /sys/class/net/$TAP || ! test -d /proc/$UPID || grep -q '^State:.*Z' /proc/$UPID/status"; then
		fail "usbnetd, reply $1: neither $TAP nor an exit within 30 s"
		kill -KILL $UPID 2>/dev/null
		wait $UPID 2>/dev/null
		cp $LAB_RES.usbnetd.log $LAB_RES.usbnetd.reply-$1.log
		cell reply $1 usbnetd "STUCK: no $TAP, no exit"
		return
	fi
	if ! is_alive $UPID; then
		wait $UPID
		_rc=$?
		cp $LAB_RES.usbnetd.log $LAB_RES.usbnetd.reply-$1.log
		_lines=$(grep -c '^usbnetd: ' $LAB_RES.usbnetd.log)
		_msg=$(grep '^usbnetd: ' $LAB_RES.usbnetd.log | tail -1 | cut -c10-330)
		out="refused (exit $_rc): $_msg"
		if [ $_rc = 0 ] || [ $_rc -ge 100 ] || [ "$_lines" != 1 ]; then
			fail "usbnetd, reply $1: exit $_rc with $_lines error line(s): not a clear refusal"
			sed 's/^/  usbnetd: /' $LAB_RES.usbnetd.log | tail -5
			out="$out: NOT CLEAN"
		fi
		# nothing half-configured: no TAP left, the interface given back to rndis_host
		[ -e /sys/class/net/$TAP ] && { fail "usbnetd, reply $1: $TAP left after the refusal"; out="$out; $TAP LEFT"; }
		if [ $KBOUND = 1 ] && ! wait_for 5 iface_bound_to rndis_host; then
			fail "usbnetd, reply $1: rndis_host not back after the refusal"
			out="$out; rndis_host NOT BACK"
		fi
		cell reply $1 usbnetd "$out"
		return
	fi
	$IP link set $TAP up
	$IP addr replace $NET_HOST/24 dev $TAP
	wait_for 5 carrier $TAP || log "$TAP: no carrier"
	txrx $TAP
	_info=$(grep -o 'device takes [^)]*)' $LAB_RES.usbnetd.log | head -1)
	if [ $TX_GOOD -gt 0 ] && [ $TX_BAD = 0 ] && [ $TX_OVER = 0 ] && [ $RX_GOT -ge 2 ]; then
		out="up, TX+RX work (MTU $(cat /sys/class/net/$TAP/mtu); $_info)"
	else
		out="up, BROKEN: TX $TX_GOOD good / $TX_BAD bad / $TX_OVER oversize, RX $RX_GOT of 2"
		fail "usbnetd, reply $1: $out"
	fi
	_warn=$(grep -i 'warn' $LAB_RES.usbnetd.log | sed 's/^\[[^]]*\] //' | tr '\n' ';' | sed 's/;$//' | cut -c1-200)
	[ -n "$_warn" ] && { log "  usbnetd: $_warn"; out="$out; $_warn"; }
	kill -INT $UPID
	wait_for 3 sh -c "! test -d /proc/$UPID || grep -q '^State:.*Z' /proc/$UPID/status" || fail "usbnetd, reply $1: still running 3 s after SIGINT"
	wait $UPID
	_rc=$?
	cp $LAB_RES.usbnetd.log $LAB_RES.usbnetd.reply-$1.log
	[ $_rc = 0 ] || { fail "usbnetd, reply $1: exit $_rc after SIGINT"; out="$out; exit $_rc after SIGINT"; }
	cell reply $1 usbnetd "$out"
}

# ------------------------------------------------------------------ 1. data ----
log "==== data, status and stall cases ===="
hostile_start
if wait_kernel_netdev; then
	KIF=$HOSTIF
	$IP link set $KIF up
	wait_for 3 carrier $KIF || log "$KIF: no carrier from rndis_host"
	check "kernel driver on the hostile device is rndis_host" iface_bound_to rndis_host
	run_data $KIF rndis_host
	$IP link set $KIF down
fi
start_usbnetd run --device $GADGET_PORT --ifname $TAP
wait_usbnetd_if $TAP 10
run_data $TAP usbnetd
LD_LIBRARY_PATH=/mnt/bin/lib timeout 5 $USBNETD stats $TAP --json > $LAB_RES.stats.json 2>&1
log "usbnetd stats after the data cases: $(tr -d ' \n' < $LAB_RES.stats.json | cut -c1-600)"
stop_usbnetd
cp $LAB_RES.usbnetd.log $LAB_RES.usbnetd.data.log
check "kernel driver back on the hostile device after usbnetd" wait_for 5 iface_bound_to rndis_host
hostile_stop

# ------------------------------------------------------------------ 2. bring-up ----
log "==== bring-up cases ===="
for r in $($H --list | awk '$1=="reply" && $2!="normal"{print $2}'); do
	log "-- reply $r"
	PROBES0=$(dmesg | grep -c 'rndis_host: probe of')
	hostile_start --reply $r
	kernel_bringup $r
	usbnetd_bringup $r
	hostile_stop
done

finish_table

# ifdown-CLASS: an interface set down no longer polls the device, and set up again it
# carries traffic, as usbnet's stop (which kills its IN transfers) and open (which submits
# them again) have it; judged on the bus (usbmon: bulk IN transfers the host keeps pending
# on the device) against the kernel's driver on the same gadget in the same boot. CLASS
# ecm or ncm. While the host's interface is down the gadget keeps sending (pings to the
# host, 3 s): with the interface down 1 s, no bulk IN transfer may be pending or
# submitted; once up, a ping must get through within 5 s.
CLASS=${LAB_SCENARIO#ifdown-}
DRIVER=$(class_driver $CLASS)
[ -n "$DRIVER" ] || die "unknown class $CLASS"
TAP=usbnet0
MON=/tmp/lab-usbmon-ifdown.txt

kernel_up_usbmon $CLASS $MON

# usbmon text: tag time S|C|E Bi:BUS:DEV:EP ... Bulk IN transfers to the gadget:
# in_pending: submitted and not completed; in_submitted: submissions so far.
in_pending() {
	awk -v a="Bi:$DEVADDR:" 'index($4, a) == 1 { if ($3 == "S") n++; else if ($3 == "C") n-- } END { print n + 0 }' $MON
}
in_submitted() {
	awk -v a="Bi:$DEVADDR:" 'index($4, a) == 1 && $3 == "S" { n++ } END { print n + 0 }' $MON
}

# down_up WHO IF: set IF down while the gadget sends, check the bus, set it up again.
# Sets PENDING_UP (transfers pending once up) and UP_S (seconds from up to a ping).
down_up() {
	_who=$1 _if=$2
	log "$_who: $_if up, $(in_pending) bulk IN transfers pending"
	$IP link set $_if down || fail "ip link set $_if down"
	# The gadget goes on sending to the host, which no longer answers.
	in_ns ping -c 15 -i 0.2 -W 1 $NET_HOST > /dev/null 2>&1 &
	_pp=$!
	sleep 1
	_s0=$(in_submitted)
	wait $_pp
	_pending=$(in_pending) _submitted=$(($(in_submitted) - _s0))
	check "$_who: no bulk IN transfer pending with $_if down (got $_pending)" [ "$_pending" = 0 ]
	check "$_who: no bulk IN transfer submitted with $_if down (got $_submitted in 2 s)" [ "$_submitted" = 0 ]
	$IP link set $_if up || fail "ip link set $_if up"
	_t0=$(now_s)
	[ $CLASS = ncm ] && ncm_gadget_flush $(cat /sys/class/net/$_if/address)
	if wait_for 5 ping1 $NET_GADGET; then
		UP_S=$(since $_t0)
		ok "$_who: ping through $_if ${UP_S} s after it came up"
	else
		UP_S=-
		fail "$_who: no ping through $_if within 5 s of it coming up"
	fi
	PENDING_UP=$(in_pending)
	check "$_who: bulk IN polled again once $_if is up ($PENDING_UP pending)" [ "$PENDING_UP" -gt 0 ]
}

down_up "kernel $DRIVER" $HOSTIF
K_UP=$UP_S K_PENDING=$PENDING_UP

start_usbnetd run --device $GADGET_PORT --ifname $TAP -v
wait_usbnetd_if $TAP 10
$IP addr replace $NET_HOST/24 dev $TAP
[ $CLASS = ncm ] && ncm_gadget_flush $(cat /sys/class/net/$TAP/address)
check "ping through $TAP" wait_for 10 ping1 $NET_GADGET
down_up usbnetd $TAP
check "usbnetd logged the pause" grep -q "bulk IN paused" $LAB_RES.usbnetd.log
check "usbnetd logged the resumption" grep -q "bulk IN resumed" $LAB_RES.usbnetd.log
drops=$(ustat rx_drop_tap)
log "usbnetd: $drops frame(s) refused by the down interface before the pause"
stop_usbnetd
kill $MONPID 2>/dev/null
result "class=$CLASS kernel_up_s=$K_UP kernel_pending_up=$K_PENDING usbnetd_up_s=$UP_S usbnetd_pending_up=$PENDING_UP usbnetd_refused=$drops"
echo "---- usbnetd log (tail) ----"
tail -10 $LAB_RES.usbnetd.log
finish

# unplug-ncm: the dongle is pulled out while usbnetd drives it under traffic. usbnetd
# must notice within 1 s, exit with status 3 (documented: unplugged), and leave no TAP.
# Then the same gadget is plugged in again and usbnetd, started again, drives it.
CLASS=ncm
TAP=usbnet0
kernel_up $CLASS
start_usbnetd run --device $GADGET_PORT --ifname $TAP -v
wait_usbnetd_if $TAP 10
$IP addr replace $NET_HOST/24 dev $TAP
check "ping through $TAP before unplug" wait_for 10 ping1 $NET_GADGET
# Traffic in flight while the cable is pulled.
ping -f -w 5 $NET_GADGET > /dev/null 2>&1 &
FLOOD=$!
sleep 0.5
_t0=$(now_s)
echo "" > $GDIR/UDC
if wait_for 3 sh -c "! test -d /proc/$UPID || grep -q '^State:.*Z' /proc/$UPID/status"; then
	wait $UPID
	_rc=$?
	_dt=$(awk -v a=$_t0 -v b=$(now_s) 'BEGIN{printf "%.2f", b-a}')
	log "usbnetd: exited with status $_rc ${_dt}s after the unplug"
	check "usbnetd exit status 3 (unplugged), got $_rc" [ "$_rc" = 3 ]
	check "usbnetd gone within 1 s of the unplug (${_dt}s)" awk -v d=$_dt 'BEGIN{exit !(d <= 1.0)}'
else
	fail "usbnetd still running 3 s after the unplug"
	kill -KILL $UPID 2>/dev/null
fi
check "$TAP gone after the unplug" wait_for 1 sh -c "! test -e /sys/class/net/$TAP"
kill $FLOOD 2>/dev/null
wait $FLOOD 2>/dev/null
# Replug: the kernel driver binds; usbnetd takes it over again.
# (The gadget's netdev stays in its namespace across the unplug.)
gadget_plug
wait_kernel_netdev
start_usbnetd run --device $GADGET_PORT --ifname $TAP -v
wait_usbnetd_if $TAP 10
$IP addr replace $NET_HOST/24 dev $TAP
# f_ncm may have stranded an NTB at the unplug (lib.sh: ncm_gadget_flush); a real
# dongle would have lost its power and come back fresh.
ncm_gadget_flush $(cat /sys/class/net/$TAP/address)
if wait_for 15 ping1 $NET_GADGET; then
	ok "ping through $TAP after replug"
else
	fail "ping through $TAP after replug"
	# what each end saw, for the rare run where this fails
	log "diag: usbnetd stats: $(LD_LIBRARY_PATH=/mnt/bin/lib timeout 5 $USBNETD stats $TAP --json 2>&1 | tr -d ' \n' | cut -c1-900)"
	log "diag: host: $($IP -s link show $TAP 2>&1 | tr '\n' ' ')"
	log "diag: host neigh: $($IP neigh show dev $TAP 2>&1 | tr '\n' ' ')"
	log "diag: gadget: $($IP -n $NS -s link show $GADGETIF 2>&1 | tr '\n' ' ')"
	log "diag: gadget neigh: $($IP -n $NS neigh 2>&1 | tr '\n' ' ')"
	log "diag: gadget addr: $($IP -n $NS addr show $GADGETIF 2>&1 | tr '\n' ' ')"
	dmesg | tail -20 | sed 's/^/  diag dmesg: /'
fi
stop_usbnetd
result "unplug_exit_s=$_dt"
echo "---- usbnetd log (tail) ----"
tail -5 $LAB_RES.usbnetd.log
finish

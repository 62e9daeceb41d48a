# reset-CLASS: another program resets the device (USBDEVFS_RESET, tools/lab/util/usbreset),
# as the hub driver does to recover a misbehaving device and a resume does when the
# device lost its state. The USB core unbinds every interface driver that cannot ride
# a reset (the usbnet drivers and usbfs alike) and probes drivers again.
#   The kernel's driver, first, for reference: its netdev goes and a new one comes,
#   which carries a ping (not cdc_subset's, which stays bound and carries nothing).
#   usbnetd, under a ping stream: it must claim the interfaces back and go on with the
#   same TAP (its address kept), carrying pings within 10 s; `device_resets` 1 in its
#   stats; usbfs holds the interfaces and the kernel's netdev is gone again. Then a
#   second reset, and SIGINT: exit 0 with the kernel's driver back.
CLASS=${LAB_SCENARIO#reset-}
TAP=usbnet0
DRIVER=$(class_driver $CLASS)
kernel_up $CLASS
k0=$HOSTIF
kmac0=$(cat /sys/class/net/$HOSTIF/address)
/mnt/bin/usbreset $DEVNODE || fail "usbreset $DEVNODE under $DRIVER"
kernel_back() { iface_bound_to $DRIVER && has_host_if; }
no_host_if() { ! has_host_if; }
if wait_for 10 kernel_back; then
	HOSTIF=$(host_ifname)
	log "kernel: $DRIVER bound again after the reset, netdev $k0 ($kmac0) -> $HOSTIF ($(cat /sys/class/net/$HOSTIF/address))"
	net_host_if $HOSTIF
	# cdc_eem and cdc_subset make up a new random MAC for the new netdev: the gadget's
	# neighbour entry for us is stale
	in_ns $IP neigh flush dev $GADGETIF
	# The reference, not a check of usbnetd: cdc_subset keeps its netdev across the
	# reset (it is not unbound) and then carries nothing.
	if wait_for 10 ping1 $NET_GADGET; then kping=ok; else kping=failed; fi
	log "kernel: ping over $HOSTIF after the reset: $kping"
else
	kping=unbound
	log "kernel: $DRIVER not bound with a netdev within 10 s of the reset"
fi

start_usbnetd run --device $GADGET_PORT --ifname $TAP -v
wait_usbnetd_if $TAP 10
$IP addr replace $NET_HOST/24 dev $TAP
check "usbnetd: ping before the reset" wait_for 10 ping1 $NET_GADGET
ping -c 600 -i 0.02 -W 1 -q $NET_GADGET > /tmp/lab-reset-ping.txt 2>&1 &
PINGPID=$!
sleep 1
t0=$(now_s)
/mnt/bin/usbreset $DEVNODE || fail "usbreset $DEVNODE under usbnetd"
check "usbnetd logs the reset and goes on" wait_for 10 grep -q "was reset; its interfaces are claimed back" $LAB_RES.usbnetd.log
check "usbnetd alive after the reset" is_alive $UPID
check "ping through $TAP within 10 s of the reset" wait_for 10 ping1 $NET_GADGET
log "usbnetd: ping back $(since $t0) s after the reset"
kill $PINGPID 2>/dev/null
wait $PINGPID 2>/dev/null
sed 's/^/  ping stream: /' /tmp/lab-reset-ping.txt
check "$TAP kept its address" sh -c "$IP -4 addr show $TAP | grep -q '$NET_HOST/24'"
check "1-1:1.0 claimed through usbfs again (driver: $(iface_driver 0))" iface_bound_to usbfs
check "no kernel netdev while usbnetd runs" no_host_if
resets_are() { [ "$(ustat device_resets)" = "$1" ]; }
# (the stats file is rewritten once a second)
wait_for 3 resets_are 1
resets=$(ustat device_resets)
check "usbnetd stats: device_resets 1 (got $resets)" [ "$resets" = 1 ]
/mnt/bin/usbreset $DEVNODE || fail "second usbreset under usbnetd"
check "ping through $TAP after a second reset" wait_for 10 ping1 $NET_GADGET
stop_usbnetd
check "kernel driver $DRIVER back after usbnetd exit" wait_for 5 iface_bound_to $DRIVER
result "class=$CLASS kernel_netdev_before=$k0 kernel_netdev_after=$HOSTIF kernel_ping_after_reset=$kping usbnetd_resets=$resets"
echo "---- usbnetd log (tail) ----"
tail -12 $LAB_RES.usbnetd.log
finish

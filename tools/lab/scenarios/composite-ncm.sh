# composite-ncm: a composite gadget (ACM serial + NCM, with IADs; NCM at interfaces 2/3)
# with the NCM function's qmult raised to 10 and the gadget's MTU lowered to 1400.
# usbnetd must find the NCM function among the ACM ones, take it from cdc_ncm, carry ping
# and iperf3 both ways, and hand it back to cdc_ncm on SIGINT.
TAP=usbnet0
gadget_params acm_ncm
GADGET_QMULT=10 gadget_create acm_ncm
check "NCM function qmult 10" [ "$(cat $GDIR/functions/ncm.usb0/qmult)" = 10 ]
gadget_plug
wait_for 10 sh -c "ls -d $USBDEV/$GADGET_PORT:1.2/net/* >/dev/null 2>&1" ||
	die "cdc_ncm did not bind the NCM function at $GADGET_PORT:1.2"
check "cdc_ncm bound to the NCM function (1.2), ACM (1.0) left alone" \
	sh -c "[ \"$(iface_driver 2)\" = cdc_ncm ] && [ \"$(iface_driver 0)\" != cdc_ncm ]"
net_gadget_ns
$IP -n $NS link set $GADGETIF mtu 1400
start_usbnetd run --device $GADGET_PORT --ifname $TAP -v
wait_usbnetd_if $TAP 10
mac=$(cat /sys/class/net/$TAP/address)
check "$TAP MAC $mac is the NCM function's host_addr $HOST_ADDR" [ "$mac" = "$HOST_ADDR" ]
check "1-1:1.2 claimed through usbfs (driver: $(iface_driver 2))" sh -c "[ \"$(iface_driver 2)\" = usbfs ]"
$IP addr replace $NET_HOST/24 dev $TAP
measure_traffic $UPID
stop_usbnetd
check "$TAP gone after usbnetd exit" wait_for 2 sh -c "! test -e /sys/class/net/$TAP"
check "cdc_ncm bound to 1-1:1.2 again" wait_for 3 sh -c "[ \"\$(basename \$(readlink $USBDEV/$GADGET_PORT:1.2/driver))\" = cdc_ncm ]"
result "class=ncm composite=acm_ncm mac=$mac $M_KV usbnetd_cpu_pct=$M_PROC_CPU"
echo "---- usbnetd log (tail) ----"
tail -8 $LAB_RES.usbnetd.log
finish

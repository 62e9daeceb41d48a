# e2e-qemu-usbnet: usbnetd on QEMU's own usb-net (0525:a4a2, full speed on the
# xhci bus; configurations RNDIS and CDC-ECM; slirp behind it with
# restrict=on): DHCP lease with busybox udhcpc, ping 10.0.2.2, clean exit.
# e2e-qemu-usbnet drives the configuration the probe prefers (CDC-ECM, 1);
# e2e-qemu-usbnet-rndis drives the RNDIS one (2) with --class rndis, and the
# configuration found (1) must be back after usbnetd exits.
TAP=usbnet0
case $LAB_SCENARIO in
e2e-qemu-usbnet-rndis) CLASS_ARGS="--class rndis" CLASS=rndis ;;
*) CLASS_ARGS= CLASS=preferred ;;
esac
q=
for d in $USBDEV/*; do
	[ "$(attr $d/idVendor):$(attr $d/idProduct)" = 0525:a4a2 ] && q=$(basename $d)
done
[ -n "$q" ] || die "QEMU usb-net (0525:a4a2) not found"
kdrv=$(iface_driver 0 $q)
log "QEMU usb-net at $q (configuration $(cat $USBDEV/$q/bConfigurationValue), kernel driver on :1.0: ${kdrv:-none})"
cfg_before=$(cat $USBDEV/$q/bConfigurationValue)
start_usbnetd run --device 0525:a4a2 --ifname $TAP -v $CLASS_ARGS
wait_usbnetd_if $TAP 10
if [ -n "$CLASS_ARGS" ]; then
	check "usb-net in configuration 2 (RNDIS) while usbnetd runs" [ "$(cat $USBDEV/$q/bConfigurationValue)" = 2 ]
fi
mac=$(cat /sys/class/net/$TAP/address)
check "$TAP MAC $mac is QEMU's usb-net MAC $LAB_QEMU_USBNET_MAC" [ "$mac" = "$LAB_QEMU_USBNET_MAC" ]
[ "${LAB_E2E_STANDIN:-0}" = 1 ] || check "$TAP is a TAP device" test -e /sys/class/net/$TAP/tun_flags
# RNDIS OID_GEN_LINK_SPEED: QEMU says 100 Mbit/s; its ECM sends no speed notification.
case $CLASS in rndis) _want=100 ;; *) _want=-1 ;; esac
[ "${LAB_E2E_STANDIN:-0}" = 1 ] ||
	check "$TAP reports link speed $_want (got: $(cat /sys/class/net/$TAP/speed 2>&1))" \
		[ "$(cat /sys/class/net/$TAP/speed)" = $_want ]
if timeout 20 udhcpc -i $TAP -n -q -t 5 -T 1 -s /mnt/udhcpc.script > $LAB_RES.udhcpc.log 2>&1; then
	ok "DHCP lease: $(grep 'udhcpc: bound' $LAB_RES.udhcpc.log | head -1)"
else
	fail "no DHCP lease on $TAP from slirp"
	cat $LAB_RES.udhcpc.log
fi
ping_stats 10.0.2.2 5
check "ping 10.0.2.2 (slirp gateway): $PING_RX/$PING_TX" [ "$PING_RX" -ge 4 ]
rtt=$PING_AVG
stop_usbnetd
check "$TAP gone after usbnetd exit" wait_for 2 sh -c "! test -e /sys/class/net/$TAP"
check "configuration $cfg_before restored" wait_for 3 sh -c "[ \"\$(cat $USBDEV/$q/bConfigurationValue)\" = $cfg_before ]"
if [ -n "$kdrv" ]; then
	check "kernel driver $kdrv bound to $q:1.0 again" wait_for 3 iface_bound_to $kdrv $q
fi
result "class=$CLASS mac=$mac rtt_avg_ms=$rtt kernel_driver=${kdrv:-none}"
echo "---- usbnetd log (tail) ----"
tail -30 $LAB_RES.usbnetd.log
finish

# smoke: the guest came up with what the other scenarios need.
log "kernel $(uname -r), uptime $(now_s)s"
check "9p share mounted on /mnt" grep -q ' /mnt 9p ' /proc/mounts
check "configfs usb_gadget present" test -d $G
check "dummy_udc.0 present" test -e /sys/class/udc/$UDC
check "usbmon debugfs present" test -e /sys/kernel/debug/usb/usbmon/0u
check "/dev/net/tun present" test -c /dev/net/tun
check "iproute2 runs" $IP -V
check "iperf3 runs" $IPERF3 -v
check "ip netns works" sh -c "$IP netns add smoke && $IP netns exec smoke true && $IP netns del smoke"
q=
for d in $USBDEV/*; do
	[ "$(attr $d/idVendor):$(attr $d/idProduct)" = 0525:a4a2 ] && q=$(basename $d)
done
check "QEMU usb-net (0525:a4a2) present" test -n "$q"
[ -n "$q" ] && log "QEMU usb-net at $q, bus $(cat $USBDEV/$q/busnum) dev $(cat $USBDEV/$q/devnum), speed $(cat $USBDEV/$q/speed), driver on :1.0 $(iface_driver 0 $q), configs $(cat $USBDEV/$q/bNumConfigurations), active $(cat $USBDEV/$q/bConfigurationValue)"
lsmod | sort > $LAB_RES.lsmod
result "uptime_s=$(now_s) qemu_usbnet=${q:--}"
finish

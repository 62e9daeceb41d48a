# rebind-ncm (diagnostic, not in `lab test`): the kernel's own cdc_ncm unbound for ~17 s and bound again, no usbnetd.
CLASS=ncm
DRIVER=cdc_ncm
kernel_up $CLASS
check "ping before" wait_for 10 ping1 $NET_GADGET
echo 1-1:1.0 > /sys/bus/usb/drivers/cdc_ncm/unbind
sleep 17
echo 1-1:1.0 > /sys/bus/usb/drivers/cdc_ncm/bind
if wait_for 5 has_host_if; then
	HOSTIF=$(host_ifname)
	net_host_if $HOSTIF
	check "ping over the kernel's $HOSTIF after rebind" wait_for 10 ping1 $NET_GADGET
fi
finish

# baseline-CLASS: the kernel's own host driver on a configfs gadget of CLASS
# (ncm ecm rndis eem subset). The gadget's netdev lives in netns "gad" with
# 192.168.77.2, the host side gets 192.168.77.1; ping and iperf3 both ways.
CLASS=${LAB_SCENARIO#baseline-}
DRIVER=$(class_driver $CLASS)
[ -n "$DRIVER" ] || die "unknown class $CLASS"
kernel_driver_prepare $CLASS
gadget_create $CLASS
gadget_plug
wait_kernel_netdev
# up right after plug (a host netdev left down ~10 s can miss carrier later)
net_host_if $HOSTIF
check "kernel driver on 1-1:1.0 is $DRIVER" iface_bound_to $DRIVER
if kernel_uses_mac $CLASS; then
	check "host netdev MAC is host_addr $HOST_ADDR" [ "$(cat /sys/class/net/$HOSTIF/address)" = "$HOST_ADDR" ]
fi
net_gadget_ns
measure_traffic
result "class=$CLASS driver=$(iface_driver 0) ifname=$HOSTIF $M_KV"
finish

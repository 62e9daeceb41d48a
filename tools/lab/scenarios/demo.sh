# demo: what a user without a dongle sees: an NCM gadget is plugged, usbnetd
# takes it, the TAP usbnet0 carries a ping; then usbnetd's log.
gadget_create ncm
gadget_plug
echo "== a USB NCM device is plugged in: $GADGET_PORT $(cat $USBDEV/$GADGET_PORT/idVendor):$(cat $USBDEV/$GADGET_PORT/idProduct) \"$(cat $USBDEV/$GADGET_PORT/product)\" at $DEVNODE"
wait_kernel_netdev
net_host_if $HOSTIF
net_gadget_ns
echo "== usbnetd list"
LD_LIBRARY_PATH=/mnt/bin/lib timeout 5 $USBNETD list > $LAB_RES.list 2>&1
sed 's/^/   /' $LAB_RES.list
check "usbnetd list shows the NCM function with its MAC and kernel driver" \
	grep -q "^$GADGET_PORT .*CDC-NCM.*driver cdc_ncm.*MAC $HOST_ADDR" $LAB_RES.list
echo "== usbnetd dump --device $GADGET_PORT (tail)"
LD_LIBRARY_PATH=/mnt/bin/lib timeout 5 $USBNETD dump --device $GADGET_PORT > $LAB_RES.dump 2>&1
tail -3 $LAB_RES.dump | sed 's/^/   /'
_macstr=$(echo $HOST_ADDR | tr -d :)
check "usbnetd dump reads the live strings (iMACAddress \"$_macstr\", product)" \
	sh -c "grep -qi '\"$_macstr\"' $LAB_RES.dump && grep -q 'usbnetd lab ncm gadget' $LAB_RES.dump"
check "usbnetd dump says what it would drive" grep -q "usbnetd would drive: CDC-NCM" $LAB_RES.dump
echo "== usbnetd run --device $GADGET_PORT --ifname usbnet0 -v"
start_usbnetd run --device $GADGET_PORT --ifname usbnet0 -v
wait_usbnetd_if usbnet0 10
$IP addr replace $NET_HOST/24 dev usbnet0
wait_for 10 ping1 $NET_GADGET || fail "no ping reply through usbnet0"
echo "== ping -c 5 $NET_GADGET (the device's side)"
ping -c 5 -i 0.2 $NET_GADGET | sed 's/^/   /'
echo "== ip -s link show usbnet0"
$IP -s link show usbnet0 | sed 's/^/   /'
echo "== usbnetd stats usbnet0 --json"
LD_LIBRARY_PATH=/mnt/bin/lib timeout 5 $USBNETD stats usbnet0 --json 2>&1 | sed 's/^/   /'
echo "== Ctrl-C (SIGINT) to usbnetd"
stop_usbnetd
echo "== usbnetd's log"
sed 's/^/   /' $LAB_RES.usbnetd.log
finish

# capture: raw descriptors (device descriptor + every configuration's full
# block, as usbfs returns them from /dev/bus/usb/BBB/DDD) of each configfs
# gadget on dummy_hcd and of QEMU's usb-net, into results/capture/NAME.bin.
# Compared with the committed tests/fixtures/NAME.bin (the host copies them to
# /mnt/expected) unless LAB_UPDATE=1.
C=/mnt/results/capture
mkdir -p $C
compare() {
	_n=$1
	if [ "$LAB_UPDATE" = 1 ]; then
		return 0
	fi
	if [ ! -f /mnt/expected/$_n.bin ]; then
		fail "$_n: no committed tests/fixtures/$_n.bin to compare with (capture with --update)"
	elif cmp -s /mnt/expected/$_n.bin $C/$_n.bin; then
		ok "$_n.bin matches tests/fixtures/$_n.bin"
	else
		fail "$_n.bin differs from tests/fixtures/$_n.bin"
		cmp -l /mnt/expected/$_n.bin $C/$_n.bin 2>&1 | head -5 | sed 's/^/  cmp (offset, octal committed, octal captured): /'
		echo "  committed $(wc -c < /mnt/expected/$_n.bin) bytes, captured $(wc -c < $C/$_n.bin) bytes"
	fi
}
# grab PORT NAME
grab() {
	_p=$1 _n=$2
	_node=$(printf '/dev/bus/usb/%03d/%03d' $(cat $USBDEV/$_p/busnum) $(cat $USBDEV/$_p/devnum))
	cat $_node > $C/$_n.bin || { fail "$_n: read $_node"; return; }
	if cmp -s $C/$_n.bin $USBDEV/$_p/descriptors; then _sys=same; else _sys=differs; fi
	_len=$(wc -c < $C/$_n.bin)
	log "$_n: $_len bytes from $_node (sysfs descriptors: $_sys), $(cat $USBDEV/$_p/idVendor):$(cat $USBDEV/$_p/idProduct) bcdDevice $(cat $USBDEV/$_p/bcdDevice) configs $(cat $USBDEV/$_p/bNumConfigurations) speed $(cat $USBDEV/$_p/speed)"
	hexdump -C $C/$_n.bin | head -4 | sed 's/^/  /'
	[ "$_len" -ge 18 ] || fail "$_n: only $_len bytes"
	result "capture=$_n bytes=$_len devnode=$_node sysfs_descriptors=$_sys drivers=$(for i in $USBDEV/$_p:*; do basename "$(readlink $i/driver 2>/dev/null)" 2>/dev/null || echo none; done | tr '\n' ',' | sed 's/,$//')"
	compare $_n
}
for k in ncm ecm rndis eem geth acm_ncm; do
	gadget_create $k
	gadget_plug
	# give the kernel's host driver (if any) time to bind, for the report
	sleep 0.5
	grab $GADGET_PORT $k
	gadget_unplug
	gadget_remove $GDIR
done
q=
for d in $USBDEV/*; do
	[ "$(attr $d/idVendor):$(attr $d/idProduct)" = 0525:a4a2 ] && q=$(basename $d)
done
if [ -n "$q" ]; then
	grab $q qemu_usbnet
else
	fail "QEMU usb-net (0525:a4a2) not found"
fi
ls -l $C
finish

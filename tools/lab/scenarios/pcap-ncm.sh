# pcap-ncm: `usbnetd run --pcap` records what crossed the bus. usbnetd drives the NCM
# gadget with --pcap (USB link, usbmon format), 5 pings go through, SIGINT; then again with
# --pcap-link ethernet. Both files land in the results (NN-pcap-ncm.{usb,ethernet}.pcap);
# the host decodes them with tshark (lab: host_check_pcap) and asserts the pings are in
# the bulk transfers (USB) and in the frames (Ethernet), both directions.
CLASS=ncm
TAP=usbnet0
gadget_create $CLASS
gadget_plug
wait_kernel_netdev
net_host_if $HOSTIF
net_gadget_ns
for link in usb ethernet; do
	rm -f /tmp/lab-$link.pcap
	start_usbnetd run --device $GADGET_PORT --ifname $TAP --pcap /tmp/lab-$link.pcap --pcap-link $link -v
	wait_usbnetd_if $TAP 10
	$IP addr replace $NET_HOST/24 dev $TAP
	check "ping through $TAP ($link capture)" wait_for 10 ping1 $NET_GADGET
	ping_stats $NET_GADGET 5
	[ "$PING_RX" -ge 5 ] || fail "ping with --pcap-link $link: $PING_RX/$PING_TX replies"
	stop_usbnetd
	check "$link capture written ($(wc -c < /tmp/lab-$link.pcap 2>/dev/null) bytes)" test -s /tmp/lab-$link.pcap
	cp /tmp/lab-$link.pcap $LAB_RES.$link.pcap
	grep -i "recording" $LAB_RES.usbnetd.log
	if [ $link = usb ]; then
		wait_for 10 has_host_if || fail "no kernel netdev after the first run"
	fi
done
result "usb_pcap_bytes=$(wc -c < $LAB_RES.usb.pcap) ethernet_pcap_bytes=$(wc -c < $LAB_RES.ethernet.pcap)"
finish

# sd-two (systemd guest): two NCM dongles at once (dummy_hcd num=2: buses 1 and 2). Each
# gets its own usbnetd@ instance and interface (enx<MAC>, distinct names), systemd-networkd
# addresses both, ping and iperf3 run on both at the same time; unplugging one leaves the
# other running and carrying traffic.
sd_prepare
sd_install
A_HOST=02:4c:41:42:21:01 A_DEV=02:4c:41:42:21:02
B_HOST=02:4c:41:42:22:01 B_DEV=02:4c:41:42:22:02
A_TAP=$(tap_name $A_HOST) B_TAP=$(tap_name $B_HOST)
sd_network two-a $A_HOST 192.168.77.1/24
sd_network two-b $B_HOST 192.168.78.1/24
sd_networkd_start
sd_gadget lab_a $A_HOST $A_DEV LAB-SD-A
sd_gadget lab_b $B_HOST $B_DEV LAB-SD-B
t0=$(now_s)
echo dummy_udc.0 > $G/lab_a/UDC || die "plug A into dummy_udc.0"
echo dummy_udc.1 > $G/lab_b/UDC || die "plug B into dummy_udc.1"
wait_for 10 test -e $USBDEV/1-1/devnum || die "A not enumerated at 1-1"
wait_for 10 test -e $USBDEV/2-1/devnum || die "B not enumerated at 2-1"
# gadget sides in their own namespaces, up: each dongle reports carrier once its own
# side is up (f_ncm)
for x in a b; do
	_if=$(cat $G/lab_$x/functions/ncm.usb0/ifname)
	_net=$([ $x = a ] && echo 77 || echo 78)
	$IP netns add gad_$x
	$IP link set $_if netns gad_$x
	$IP -n gad_$x link set lo up
	$IP -n gad_$x addr add 192.168.$_net.2/24 dev $_if
	$IP -n gad_$x link set $_if up
done
for p in 1-1 2-1; do
	wait_for 15 sd_unit_active $p || fail "usbnetd@$(sd_instance $p).service not active"
done
check "$A_TAP carrier" wait_for 15 carrier_up $A_TAP
check "$B_TAP carrier" wait_for 15 carrier_up $B_TAP
log "both interfaces have carrier $(since $t0)s after plugging both"
check "distinct interface names ($A_TAP, $B_TAP)" [ "$A_TAP" != "$B_TAP" ]
n=$(pgrep -c -x usbnetd)
check "two usbnetd processes ($n)" [ "$n" = 2 ]
for p in $(pgrep -x usbnetd); do
	check "usbnetd pid $p runs as usbnetd" [ "$(ps -o user= -p $p | tr -d ' ')" = usbnetd ]
done
systemctl list-units --no-pager --plain 'usbnetd@*' 2>&1 | sed 's/^/  units: /'
check "ping A" wait_for 15 ping1 192.168.77.2
check "ping B" wait_for 15 ping1 192.168.78.2
# both at the same time: a ping series and an iperf3 run on each
for x in a b; do
	_net=$([ $x = a ] && echo 77 || echo 78)
	$IP netns exec gad_$x $IPERF3 -s -D -B 192.168.$_net.2 --pidfile /tmp/lab-iperf-$x.pid
done
sleep 0.5
log "traffic on both: ping -c 20 and iperf3 ${LAB_IPERF_SECS}s each, at the same time"
ping -c 20 -i 0.2 -W 2 -q 192.168.77.2 > /tmp/lab-ping-a.txt 2>&1 &
pa=$!
ping -c 20 -i 0.2 -W 2 -q 192.168.78.2 > /tmp/lab-ping-b.txt 2>&1 &
pb=$!
$IPERF3 -c 192.168.77.2 -t $LAB_IPERF_SECS -f m > /tmp/lab-iperf-a.txt 2>&1 &
ia=$!
$IPERF3 -c 192.168.78.2 -t $LAB_IPERF_SECS -f m > /tmp/lab-iperf-b.txt 2>&1 &
ib=$!
wait $pa $pb $ia $ib
for x in a b; do
	rx=$(awk '/packets transmitted/{print $4}' /tmp/lab-ping-$x.txt)
	tput=$(awk '/ receiver$/{for(i=1;i<=NF;i++) if($i=="Mbits/sec") print $(i-1)}' /tmp/lab-iperf-$x.txt | tail -1)
	log "$x: ping $rx/20 replies, iperf3 ${tput:--} Mbit/s"
	check "$x: >= 18 of 20 pings answered during the parallel run" [ "${rx:-0}" -ge 18 ]
	check "$x: iperf3 above 1 Mbit/s during the parallel run" awk -v v="${tput:-0}" 'BEGIN{exit !(v>=1)}'
	eval "TPUT_$x=${tput:--}"
done
# unplug A: only its unit stops, B carries on
instA=$(sd_instance 1-1)
instB=$(sd_instance 2-1)
echo "" > $G/lab_a/UDC
check "A's unit stops on unplug" wait_for 10 sd_unit_inactive "$instA"
check "$A_TAP gone" wait_for 3 sh -c "! test -e /sys/class/net/$A_TAP"
check "B's unit still active" sd_unit_active 2-1
check "ping B after A is gone" wait_for 5 ping1 192.168.78.2
echo "" > $G/lab_b/UDC
check "B's unit stops on unplug" wait_for 10 sd_unit_inactive "$instB"
check "no usbnetd process left" wait_for 3 no_usbnetd_running
for x in a b; do kill $(cat /tmp/lab-iperf-$x.pid 2>/dev/null) 2>/dev/null; done
result "tput_a_mbps=$TPUT_a tput_b_mbps=$TPUT_b"
finish

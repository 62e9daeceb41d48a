# soak-ncm: usbnetd on the NCM gadget under iperf3 both ways (--bidir) plus ping for
# LAB_SOAK_SECS (60 in `lab test`; `lab soak` runs 600). usbnetd's RSS and open fds are
# sampled every 10 s and must stay flat; afterwards the frames usbnetd handed to the device
# must equal the frames the gadget's netdev received; drops and tx_busy are reported.
CLASS=ncm
TAP=usbnet0
SECS=${LAB_SOAK_SECS:-60}
kernel_driver_prepare $CLASS
gadget_create $CLASS
gadget_plug
wait_kernel_netdev
net_gadget_ns
gstat() { in_ns cat /sys/class/net/$GADGETIF/statistics/$1; }
# the kernel's netdev stays down: nothing reaches the gadget but through usbnetd
grx0=$(gstat rx_packets) gtx0=$(gstat tx_packets)
start_usbnetd run --device $GADGET_PORT --ifname $TAP
wait_usbnetd_if $TAP 15
$IP addr replace $NET_HOST/24 dev $TAP
wait_for 15 ping1 $NET_GADGET || die "no ping through $TAP"
iperf_server
log "soak: ${SECS}s of iperf3 --bidir and ping"
$IPERF3 -c $NET_GADGET -t $SECS --bidir -f m --connect-timeout 3000 > /tmp/iperf-soak.txt 2>&1 &
LOAD=$!
ping -i 0.2 -w $SECS -q $NET_GADGET > /tmp/lab-soak-ping.txt 2>&1 &
PING=$!
t0=$(now_s)
n=0
: > /tmp/lab-soak.samples
while is_alive $LOAD; do
	sleep 10
	is_alive $UPID || break
	n=$((n + 1))
	rss=$(awk '/^VmRSS:/{print $2}' /proc/$UPID/status)
	fds=$(ls /proc/$UPID/fd | wc -l)
	echo "$n $rss $fds" >> /tmp/lab-soak.samples
	log "sample $n: RSS ${rss} kB, $fds fds, tx_frames $(ustat tx_frames), rx_frames $(ustat rx_frames), tx_busy $(ustat tx_busy)"
done
wait $LOAD
lrc=$?
wait $PING
sed 's/^/  iperf3: /' /tmp/iperf-soak.txt | tail -8
sed 's/^/  ping: /' /tmp/lab-soak-ping.txt | tail -2
check "iperf3 --bidir ran the whole ${SECS}s (rc $lrc)" [ $lrc = 0 ]
check "usbnetd alive after the soak" is_alive $UPID
# RSS and fds flat: from the second sample on (the first includes warm-up), RSS grows by
# less than 1 MiB and the fd count does not change
rss_first=$(awk 'NR==2{print $2}' /tmp/lab-soak.samples)
rss_max=$(awk 'NR>=2 && $2>m{m=$2} END{print m+0}' /tmp/lab-soak.samples)
fds_n=$(awk 'NR>=1{print $3}' /tmp/lab-soak.samples | sort -u | wc -l)
[ -n "$rss_first" ] || rss_first=$(awk 'NR==1{print $2}' /tmp/lab-soak.samples)
check "RSS flat: ${rss_first} kB -> max ${rss_max} kB over $n samples" [ $((rss_max - rss_first)) -lt 1024 ]
check "open fds flat ($(awk '{print $3}' /tmp/lab-soak.samples | sort -u | tr '\n' ' '))" [ "$fds_n" = 1 ]
kill $(cat /tmp/iperf3-server.pid 2>/dev/null) 2>/dev/null
sleep 2
# usbnetd's stats file is refreshed once a second while the gadget's counter is live, so a
# stray frame (an IPv6 report, a late TCP reset) sent just before the reading shows on the
# gadget first. Compare only a quiet pair: two readings 1.5 s apart that agree.
tx=-1 grx=-1 quiet=0
for i in 1 2 3 4 5 6; do
	tx1=$(ustat tx_frames) grx1=$(($(gstat rx_packets) - grx0))
	if [ "$tx1" = "$tx" ] && [ "$grx1" = "$grx" ]; then quiet=1; break; fi
	tx=$tx1 grx=$grx1
	sleep 1.5
done
[ $quiet = 1 ] || log "soak: counters still moving after 6 readings (tx_frames $tx, gadget rx $grx)"
rx=$(ustat rx_frames) busy=$(ustat tx_busy) txe=$(ustat tx_errors)
dropt=$(($(ustat rx_drop_bad_transfer) + $(ustat rx_drop_bad_frame) + $(ustat rx_drop_tap)))
dinv=$(ustat tx_drop_invalid) gro=$(ustat rx_gro_packets)
gtx=$(($(gstat tx_packets) - gtx0))
log "usbnetd: tx_frames $tx (gadget received $grx), rx_frames $rx (gadget sent $gtx, $gro GRO super-packets), tx_busy $busy, tx_errors $txe, tx_drop_invalid $dinv, rx drops $dropt"
check "frames usbnetd sent ($tx) = frames the gadget received ($grx)" [ "$tx" = "$grx" ]
stop_usbnetd
check "cdc_ncm bound again after the soak" wait_for 5 iface_bound_to cdc_ncm
result "soak_secs=$SECS samples=$n rss_first_kb=$rss_first rss_max_kb=$rss_max tx_frames=$tx gadget_rx=$grx rx_frames=$rx gadget_tx=$gtx tx_busy=$busy tx_errors=$txe rx_drops=$dropt"
finish

# replug-probe: the Linux NCM gadget (f_ncm) strands a half-built NTB when it is unplugged
# while sending, and after the replug sends nothing until 32 datagrams fill it. This shows
# it with the kernel's own cdc_ncm as host driver (no usbnetd), LAB_PROBE_ROUNDS replugs
# under ping -f (default 40; 6 of 40 stuck when measured), and checks that the gadget-side
# flush the unplug scenarios use (lib.sh: ncm_gadget_flush) revives every stuck round.
# Not in `lab test`: run it with `tools/lab/lab run replug-probe`.
CLASS=ncm
kernel_up $CLASS
N=${LAB_PROBE_ROUNDS:-40}
i=0 stuck=0 recovered=0
while [ $i -lt $N ]; do
	i=$((i + 1))
	wait_for 10 ping1 $NET_GADGET || { log "round $i: no ping before unplug"; }
	ping -f -w 3 $NET_GADGET > /dev/null 2>&1 &
	F=$!
	sleep 0.3
	echo "" > $GDIR/UDC
	kill $F 2>/dev/null; wait $F 2>/dev/null
	sleep 0.2
	gadget_plug > /dev/null
	wait_kernel_netdev > /dev/null
	net_host_if $HOSTIF
	if wait_for 6 ping1 $NET_GADGET; then
		:
	else
		stuck=$((stuck + 1))
		log "round $i: STUCK: $($IP -n $NS -s link show $GADGETIF | tr '\n' ' ')"
		ncm_gadget_flush $(cat /sys/class/net/$HOSTIF/address)
		if wait_for 5 ping1 $NET_GADGET; then recovered=$((recovered + 1)); log "round $i: revived by the flush"; else log "round $i: the flush did not help"; fi
	fi
done
result "rounds=$N stuck=$stuck recovered=$recovered"
check "the flush revived $recovered of $stuck stuck rounds" [ $recovered = $stuck ]
finish

# sd-hotplug (systemd guest): install the .deb with dpkg -i, then plug an NCM gadget and
# type nothing: udev tags the device, systemd starts usbnetd@<instance>.service as user
# usbnetd with CAP_NET_ADMIN only, usbnetd takes the device from cdc_ncm and creates
# enx<MAC>, systemd-networkd gives it its address, a ping goes through. Unplug: the unit
# stops, the TAP is gone, no usbnetd process is left. LAB_SD_CYCLES plug/unplug cycles
# (default 5; `lab run sd-hotplug --env LAB_SD_CYCLES=20`), every one checked, with the
# time from plug to carrier up and from unplug to the unit stopped. Also: `man usbnetd`
# renders and the bash completion loads.
CYCLES=${LAB_SD_CYCLES:-5}
sd_prepare
check "no usbnetd unit before the package" sh -c '! test -e /usr/lib/systemd/system/usbnetd@.service'
sd_install
check "user usbnetd exists ($(getent passwd usbnetd))" getent passwd usbnetd
check "/run/usbnetd exists, owned by usbnetd ($(stat -c %U /run/usbnetd 2>/dev/null))" \
	sh -c '[ "$(stat -c %U /run/usbnetd)" = usbnetd ]'
man -P cat usbnetd > /tmp/lab-man.txt 2>/tmp/lab-man.err
check "man usbnetd renders ($(wc -l < /tmp/lab-man.txt) lines)" grep -q "EXIT STATUS" /tmp/lab-man.txt
sed -n '1,12p' /tmp/lab-man.txt | sed 's/^/  man: /'
man -P cat usbnetd-run > /tmp/lab-man-run.txt 2>&1
check "man usbnetd-run renders" grep -q -- --pcap /tmp/lab-man-run.txt
comp=$(bash -c 'source /usr/share/bash-completion/completions/usbnetd && complete -p usbnetd' 2>&1)
log "bash: $comp"
case $comp in
"complete "*" usbnetd") ok "bash completion loads" ;;
*) fail "bash completion does not load: $comp" ;;
esac

gadget_params ncm
HOST_ADDR=02:4c:41:42:01:01
TAP=$(tap_name $HOST_ADDR)
sd_network hotplug $HOST_ADDR $NET_HOST/24
sd_networkd_start
sd_gadget lab_ncm $HOST_ADDR $DEV_ADDR LAB-SD-0001
GDIR=$G/lab_ncm
GNETFUNC=ncm.usb0

clean=0
carrier_times=
link_times=
start_times=
ready_times=
stop_times=
i=0
while [ $i -lt $CYCLES ]; do
	i=$((i + 1))
	fails_before=$LAB_FAILS
	log "---- cycle $i/$CYCLES: plug"
	t_plug=$(now_s)
	echo $UDC > $GDIR/UDC || die "bind the gadget to $UDC"
	wait_for 10 usbdev_ready || { fail "cycle $i: gadget not enumerated within 10 s"; break; }
	t_enum=$(since $t_plug)
	inst=$(sd_instance $GADGET_PORT)
	# The gadget is the dongle: its own side of the link must be up for it to report
	# carrier (f_ncm sends NETWORK_CONNECTION when its netdev opens). Its netdev exists
	# from the first bind on and stays, up, in its namespace across unplugs.
	[ $i = 1 ] && net_gadget_ns
	# carrier first: the cheapest poll, so the time is the TAP's, not the polling's
	if ! wait_for 20 carrier_up $TAP; then
		fail "cycle $i: $TAP has no carrier 20 s after plug (unit: $(systemctl is-active "usbnetd@$inst.service"))"
		ip link show 2>&1 | sed 's/^/  link: /'
		journalctl -b --no-pager -u "usbnetd@$inst.service" -n 20 2>&1 | sed 's/^/  journal: /'
		break
	fi
	t_carrier=$(since $t_plug)
	carrier_times="$carrier_times $t_carrier"
	check "cycle $i: usbnetd@$inst.service active" sd_unit_active $GADGET_PORT
	# where the time goes, from the journal's monotonic stamps (the clock of /proc/uptime)
	# (journald may lag: wait for the lines of this cycle)
	t_starting=$(sd_journal_after "usbnetd@$inst.service" "Starting usbnetd@" $t_plug)
	t_ready=$(sd_journal_after "usbnetd@$inst.service" "Started usbnetd@" $t_plug)
	t_link=$(sd_journal_after "usbnetd@$inst.service" "link up" $t_plug)
	d_start=$(awk -v a=$t_plug -v b=$t_starting 'BEGIN{ if (b == "-") print "-"; else printf "%.2f", b-a}')
	d_ready=$(awk -v a=$t_starting -v b=$t_ready 'BEGIN{ if (a == "-" || b == "-") print "-"; else printf "%.2f", b-a}')
	d_link=$(awk -v a=$t_plug -v b=$t_link 'BEGIN{ if (b == "-") print "-"; else printf "%.2f", b-a}')
	start_times="$start_times $d_start"
	ready_times="$ready_times $d_ready"
	link_times="$link_times $d_link"
	log "cycle $i: enumerated ${t_enum}s after plug; unit starting ${d_start}s after plug, READY=1 ${d_ready}s after that; usbnetd logged link up ${d_link}s; $TAP up (systemd-networkd, once udev has processed the new link) with carrier ${t_carrier}s after plug"
	if [ $i = 1 ]; then
		log "instance: usbnetd@$inst.service"
		pid=$(sd_main_pid $inst)
		user=$(ps -o user= -p $pid 2>/dev/null | tr -d ' ')
		check "usbnetd (pid $pid) runs as user usbnetd (got '$user')" [ "$user" = usbnetd ]
		caps=$(awk '/^CapEff:/{print $2}' /proc/$pid/status)
		check "its effective capabilities are CAP_NET_ADMIN only (CapEff $caps)" [ "$caps" = 0000000000001000 ]
		check "$TAP is a TAP" test -e /sys/class/net/$TAP/tun_flags
		check "$GADGET_PORT:1.0 claimed through usbfs (driver: $(iface_driver 0))" iface_bound_to usbfs
		check "systemd-networkd gave $TAP $NET_HOST" wait_for 10 sh -c "ip -4 addr show dev $TAP | grep -q 'inet $NET_HOST/'"
		# the unit's CAP_NET_ADMIN is what ethtool's set needs: the NCM gadget's speed
		check "$TAP reports the gadget's link speed 425 (got: $(cat /sys/class/net/$TAP/speed 2>&1))" \
			wait_for 3 sh -c "[ \"\$(cat /sys/class/net/$TAP/speed)\" = 425 ]"
		systemctl status --no-pager "usbnetd@$inst.service" 2>&1 | sed -n '1,12p' | sed 's/^/  status: /'
	fi
	# every plug: udev's link policy (MACAddressPolicy) must not have replaced the MAC
	check "cycle $i: $TAP MAC is the gadget's host_addr" [ "$(cat /sys/class/net/$TAP/address)" = $HOST_ADDR ]
	# the gadget may hold an NTB stranded by the last unplug (lib.sh: ncm_gadget_flush)
	ncm_gadget_flush $HOST_ADDR
	if wait_for 15 ping1 $NET_GADGET; then
		ok "cycle $i: ping through $TAP"
	else
		fail "cycle $i: ping through $TAP"
		{
			ip -s addr show dev $TAP
			cat /run/usbnetd/$TAP.json
			in_ns ip -s addr show dev $GADGETIF
			ip neigh; in_ns ip neigh
			journalctl -b --no-pager -o short-monotonic -u "usbnetd@$inst.service" -u systemd-networkd -n 25
		} 2>&1 | sed 's/^/  diag: /'
	fi
	log "---- cycle $i/$CYCLES: unplug"
	t_unplug=$(now_s)
	echo "" > $GDIR/UDC
	if wait_for 10 sd_unit_inactive "$inst"; then
		t_stop=$(since $t_unplug)
		stop_times="$stop_times $t_stop"
		log "cycle $i: unit inactive ${t_stop}s after unplug"
	else
		fail "cycle $i: usbnetd@$inst.service still active 10 s after unplug"
	fi
	check "cycle $i: unit not failed ($(systemctl show -p Result --value "usbnetd@$inst.service"))" \
		sd_unit_not_failed "$inst"
	check "cycle $i: $TAP gone" wait_for 3 sh -c "! test -e /sys/class/net/$TAP"
	check "cycle $i: no usbnetd process left ($(pgrep -a usbnetd | tr '\n' ' '))" wait_for 3 no_usbnetd_running
	[ $LAB_FAILS = $fails_before ] && clean=$((clean + 1))
done
med() { echo $* | tr ' ' '\n' | sed '/^$/d; /^-$/d' | sort -g | awk '{a[NR]=$1} END{ if (NR==0) print "-"; else if (NR%2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2 }'; }
mx() { echo $* | tr ' ' '\n' | sed '/^$/d; /^-$/d' | sort -g | tail -1; }
log "plug -> interface up with carrier (s):$carrier_times"
log "unplug -> unit stopped (s):$stop_times"
check "$clean of $CYCLES cycles clean" [ $clean = $CYCLES ]

# Removal with a dongle plugged: the instance stops and the kernel's driver gets it back.
log "---- dpkg -r with the dongle plugged"
echo $UDC > $GDIR/UDC
wait_for 15 sd_unit_active $GADGET_PORT && wait_for 15 carrier_up $TAP || fail "not up again before dpkg -r"
dpkg -r usbnetd > /tmp/lab-dpkg-r.log 2>&1 || { cat /tmp/lab-dpkg-r.log; fail "dpkg -r usbnetd failed"; }
check "after dpkg -r: no usbnetd process" wait_for 5 no_usbnetd_running
# (cdc_ncm's own netdev gets the same enx<MAC> name from udev: the TAP must be gone)
check "after dpkg -r: the TAP $TAP is gone" wait_for 3 sh -c "! test -e /sys/class/net/$TAP/tun_flags"
check "after dpkg -r: cdc_ncm has the device again (driver: $(iface_driver 0))" wait_for 10 iface_bound_to cdc_ncm
check "after dpkg -r: the unit file is gone" sh -c '! test -e /usr/lib/systemd/system/usbnetd@.service'
echo "" > $GDIR/UDC
journalctl -b --no-pager -u 'usbnetd@*' -n 15 2>&1 | sed 's/^/  journal: /'
log "plug -> unit starting (s):$start_times"
log "unit starting -> READY=1 (s):$ready_times"
log "plug -> usbnetd logs link up (s):$link_times"
result "cycles=$CYCLES clean=$clean plug_to_carrier_med_s=$(med $carrier_times) plug_to_carrier_max_s=$(mx $carrier_times) plug_to_unit_start_med_s=$(med $start_times) unit_start_to_ready_med_s=$(med $ready_times) plug_to_link_up_med_s=$(med $link_times) unplug_to_stop_med_s=$(med $stop_times) unplug_to_stop_max_s=$(mx $stop_times)"
finish

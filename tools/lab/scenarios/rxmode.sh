# rxmode-CLASS: the device's receive filter follows the interface's promiscuous mode as
# the kernel's driver has it follow, judged on the bus (usbmon) against the kernel's
# driver on the same gadget in the same boot.
#   ecm, ncm: cdc_ether / cdc_ncm send SET_ETHERNET_PACKET_FILTER (class request 0x43)
#     when IFF_PROMISC changes; usbnetd must send the same wValue for promiscuous on
#     and off, for `ip link set promisc` and for a bridge port (the bridge raises the
#     promiscuity count, which `ip link` flags do not show), within 3 s, and again
#     after the interface was renamed (when `usbnetd stats NEWNAME` must find it too).
#   rndis: rndis_host sets OID_GEN_CURRENT_PACKET_FILTER once at bind and never again;
#     usbnetd must set the same filter at bind.
CLASS=${LAB_SCENARIO#rxmode-}
DRIVER=$(class_driver $CLASS)
[ -n "$DRIVER" ] || die "unknown class $CLASS"
TAP=usbnet0
BR=lab-br0
MON=/tmp/lab-usbmon.txt

kernel_up_usbmon $CLASS $MON

# filters: the packet filters the host sent the gadget so far, oldest first (hex, as
# usbmon writes them). usbmon text: tag time S Co:BUS:DEV:0 s bmRequestType bRequest
# wValue wIndex wLength [len = data words].
filters() {
	case $CLASS in
	rndis)
		# SEND_ENCAPSULATED_COMMAND carrying REMOTE_NDIS_SET_MSG (05000000) for
		# OID_GEN_CURRENT_PACKET_FILTER (0e010100): the filter is the 8th data word
		awk -v a="Co:$DEVADDR:0" '$3=="S" && $4==a && $5=="s" && $6=="21" && $7=="00" && $13=="05000000" && $16=="0e010100" {print $20}' $MON ;;
	*)
		awk -v a="Co:$DEVADDR:0" '$3=="S" && $4==a && $5=="s" && $6=="21" && $7=="43" {print $8}' $MON ;;
	esac
}
last_filter() { filters | tail -1; }
filter_is() { [ "$(last_filter)" = "$1" ]; }
filter_count() { filters | wc -l; }
more_filters_than() { [ "$(filter_count)" -gt "$1" ]; }

if [ $CLASS = rndis ]; then
	KBIND=$(last_filter)
	log "kernel $DRIVER: packet filter at bind $KBIND (all: $(filters | tr '\n' ' '))"
	[ -n "$KBIND" ] || fail "no OID_GEN_CURRENT_PACKET_FILTER SET from $DRIVER in the usbmon trace"
	n0=$(filters | wc -l)
	start_usbnetd run --device $GADGET_PORT --ifname $TAP -v
	wait_usbnetd_if $TAP 10
	check "usbnetd sent one packet filter at bind" [ $(($(filters | wc -l) - n0)) = 1 ]
	UBIND=$(last_filter)
	check "usbnetd's filter at bind ($UBIND) is $DRIVER's ($KBIND)" [ "$UBIND" = "$KBIND" ]
	$IP link set $TAP promisc on
	sleep 2
	check "no filter request for promiscuous on (the bind's filter stands)" [ $(($(filters | wc -l) - n0)) = 1 ]
	$IP link set $TAP promisc off
	stop_usbnetd
	kill $MONPID 2>/dev/null
	result "class=$CLASS kernel_bind=$KBIND usbnetd_bind=$UBIND"
	finish
	exit 0
fi

# The kernel driver, first: what it sends for promiscuous on, then off.
n=$(filter_count)
$IP link set $HOSTIF promisc on
wait_for 3 more_filters_than $n
KON=$(last_filter)
n=$(filter_count)
$IP link set $HOSTIF promisc off
wait_for 3 more_filters_than $n
KOFF=$(last_filter)
log "kernel $DRIVER: packet filters $(filters | tr '\n' ' '); promiscuous on $KON, off $KOFF"
[ -n "$KON" ] && [ -n "$KOFF" ] && [ "$KON" != "$KOFF" ] ||
	die "$DRIVER sent no distinct filters for promiscuous on/off (on '$KON', off '$KOFF')"

start_usbnetd run --device $GADGET_PORT --ifname $TAP -v
wait_usbnetd_if $TAP 10
UBIND=$(last_filter)
check "usbnetd's filter at bind ($UBIND) is $DRIVER's for promiscuous off ($KOFF)" [ "$UBIND" = "$KOFF" ]
$IP addr replace $NET_HOST/24 dev $TAP

# promisc_step WHAT WANT CMD...: run CMD, wait up to 3 s for filter WANT on the bus.
promisc_step() {
	_what=$1 _want=$2
	shift 2
	_t0=$(now_s)
	"$@" || fail "$_what: '$*' failed"
	if wait_for 3 filter_is $_want; then
		ok "$_what: usbnetd sent $_want after $(since $_t0) s"
	else
		fail "$_what: no filter $_want from usbnetd within 3 s (last: $(last_filter))"
	fi
}
promisc_step "ip link set promisc on" $KON $IP link set $TAP promisc on
check "ping through $TAP while promiscuous" wait_for 10 ping1 $NET_GADGET
promisc_step "ip link set promisc off" $KOFF $IP link set $TAP promisc off
$IP link add $BR type bridge || fail "ip link add $BR type bridge"
promisc_step "enslaved to bridge $BR" $KON $IP link set $TAP master $BR
log "as a bridge port: ip link says '$($IP -d link show $TAP | grep -o '<[^>]*>\|promiscuity [0-9]*' | tr '\n' ' ')', sysfs flags $(cat /sys/class/net/$TAP/flags)"
promisc_step "released from bridge $BR" $KOFF $IP link set $TAP nomaster
$IP link del $BR
# Renamed, the interface is still followed: usbnetd asks the TAP fd for its name.
NEWIF=lab-renamed0
$IP link set $TAP down && $IP link set $TAP name $NEWIF && $IP link set $NEWIF up ||
	fail "cannot rename $TAP to $NEWIF"
check "usbnetd stats finds the instance as $NEWIF" wait_for 3 sh -c "LD_LIBRARY_PATH=/mnt/bin/lib $USBNETD stats $NEWIF > /dev/null"
promisc_step "promisc on as $NEWIF" $KON $IP link set $NEWIF promisc on
promisc_step "promisc off as $NEWIF" $KOFF $IP link set $NEWIF promisc off
check "usbnetd's log names the interface $NEWIF after the rename" grep -q "$NEWIF: promiscuous on" $LAB_RES.usbnetd.log
$IP link set $NEWIF down && $IP link set $NEWIF name $TAP && $IP link set $TAP up ||
	fail "cannot rename $NEWIF back to $TAP"
check "ping through $TAP after the renames" wait_for 10 ping1 $NET_GADGET
check "usbnetd logged the filter change" grep -q "promiscuous on: SET_ETHERNET_PACKET_FILTER 0x$KON" $LAB_RES.usbnetd.log
stop_usbnetd
kill $MONPID 2>/dev/null
result "class=$CLASS kernel_on=$KON kernel_off=$KOFF usbnetd_bind=$UBIND usbnetd_filters=$(filters | tail -5 | tr '\n' ',')"
echo "---- usbnetd log (tail) ----"
tail -10 $LAB_RES.usbnetd.log
finish
